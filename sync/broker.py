"""The Dramatiq broker from `SXSYNC_BROKER_URL`, configured so a dead worker's messages return fast."""

from __future__ import annotations

import logging

import dramatiq
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from models.settings import Settings, SettingsError
from sync.actors import register_actors
from sync.runtime import Runtime

log = logging.getLogger("sxsync.broker")

DEAD_MESSAGE_TTL_MS = 7 * 86_400_000
# A SIGKILLed worker's messages return after its heartbeat expires and some worker's maintenance pass
# (run on `maintenance_chance` per million Redis commands) requeues them: both bounded keep it ≤ ~15 s.
MAX_HEARTBEAT_SECONDS = 12.0
MIN_MAINTENANCE_CHANCE = 10_000
# seconds a broker call waits on a silent Redis (frozen, partitioned) before it fails and the job's retry or the
# reconciler takes over; redis-py before 8.0 waits forever unless told, and `redis>=5` is what we require
REDIS_TIMEOUT = 5.0


def make_broker(url: str, settings: Settings) -> dramatiq.Broker:
    """Redis, RabbitMQ, or the in-process stub broker when no URL is set."""
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
        return RedisBroker(  # type: ignore[no-untyped-call]
            client=client,
            heartbeat_timeout=int(settings.broker_heartbeat_seconds * 1000),
            maintenance_chance=settings.broker_maintenance_chance,
            dead_message_ttl=DEAD_MESSAGE_TTL_MS,
        )
    if url.startswith(("amqp://", "amqps://")):
        return RabbitmqBroker(url=url)
    return StubBroker()


def setup_broker(rt: Runtime, url: str | None = None) -> dramatiq.Broker:
    """Make the broker, make it global, register our actors on it and wire `rt.send` to them."""
    broker = make_broker(rt.settings.broker_url if url is None else url, rt.settings)
    dramatiq.set_broker(broker)
    enqueue = register_actors(broker)
    rt.enqueue = enqueue
    return broker


def require_fast_redelivery(settings: Settings) -> None:
    """A worker refuses Redis broker settings that would strand a dead worker's messages for minutes.

    RabbitMQ redelivers a dead consumer's unacked messages when its connection drops; the in-process
    broker lives and dies with its process: neither depends on these settings.
    """
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return
    heartbeat, chance = settings.broker_heartbeat_seconds, settings.broker_maintenance_chance
    if heartbeat > MAX_HEARTBEAT_SECONDS or chance < MIN_MAINTENANCE_CHANCE:
        raise SettingsError(
            f"SXSYNC_BROKER_HEARTBEAT_SECONDS={heartbeat:g}, SXSYNC_BROKER_MAINTENANCE_CHANCE={chance}: "
            f"a killed worker's messages would wait minutes to come back; use a heartbeat of at most "
            f"{MAX_HEARTBEAT_SECONDS:g} s and a maintenance chance of at least {MIN_MAINTENANCE_CHANCE} per million"
        )


def warn_without_persistence(broker: dramatiq.Broker) -> bool:
    """Log a warning when the Redis broker keeps nothing on disk (a restart would lose queued jobs); True if so."""
    if not isinstance(broker, RedisBroker):
        return False
    try:
        info = broker.client.info("persistence")
    except redis.RedisError as exc:
        log.warning("could not read the broker's persistence settings: %s", exc)
        return False
    appendonly = bool(info.get("aof_enabled"))
    snapshots = _snapshots_configured(broker.client)
    if appendonly or snapshots:
        return False
    log.warning(
        "the Redis broker has no persistence (appendonly no, no snapshots): a Redis restart loses every "
        "queued page job until the scheduler's reconciler re-enqueues it; run Redis with appendonly yes"
    )
    return True


def _snapshots_configured(client: redis.Redis) -> bool:
    """Whether RDB snapshots are configured (CONFIG may be renamed away on managed Redis: then assume so)."""
    try:
        return bool(client.config_get("save").get("save"))
    except redis.RedisError:
        return True


EPOCH_KEY = "sxsync-epoch"  # under the broker's namespace; gone after a FLUSHALL or a Redis that kept nothing


def broker_was_emptied(broker: dramatiq.Broker | None) -> bool:
    """True once each time the Redis broker is found without our marker key: it lost every queued job
    (FLUSHALL, a restart without persistence, a new Redis), so the store's running chains must be resent now
    rather than after the reconciler's lease-long quiet period. The first call on a fresh Redis is True too:
    resending is harmless (a page job that finds its version done only makes sure the chain goes on)."""
    if not isinstance(broker, RedisBroker):
        return False  # RabbitMQ's queues are durable; the stub broker lives and dies with its process
    return bool(broker.client.set(f"{broker.namespace}:{EPOCH_KEY}", b"1", nx=True))
