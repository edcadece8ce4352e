"""The Dramatiq broker from `SXSYNC_BROKER_URL`, configured so a dead worker's messages return fast."""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from sync.actors import register_actors
from sync.runtime import Runtime

log = logging.getLogger("sxsync.broker")

# Dramatiq's defaults (60 s heartbeat, maintenance on 0.1 % of commands) left a SIGKILLed worker's
# messages stranded for minutes; these bring them back within ~15 s.
HEARTBEAT_TIMEOUT_MS = 10_000
MAINTENANCE_CHANCE = 100_000  # per million commands
DEAD_MESSAGE_TTL_MS = 7 * 86_400_000


def make_broker(url: str) -> dramatiq.Broker:
    """Redis, RabbitMQ, or the in-process stub broker when no URL is set."""
    if url.startswith(("redis://", "rediss://")):
        return RedisBroker(  # type: ignore[no-untyped-call]
            url=url,
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=MAINTENANCE_CHANCE,
            dead_message_ttl=DEAD_MESSAGE_TTL_MS,
        )
    if url.startswith(("amqp://", "amqps://")):
        return RabbitmqBroker(url=url)
    return StubBroker()


def setup_broker(rt: Runtime, url: str | None = None) -> dramatiq.Broker:
    """Make the broker, make it global, register our actors on it and wire `rt.send` to them."""
    broker = make_broker(rt.settings.broker_url if url is None else url)
    dramatiq.set_broker(broker)
    enqueue = register_actors(broker)
    rt.enqueue = enqueue
    return broker
