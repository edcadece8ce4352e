"""What the broker holds, read from the broker itself: depth, delay, dead letters, oldest message age.

Every figure costs O(1) broker calls per queue (Redis LLEN/HLEN/ZCARD/LINDEX, one RabbitMQ queue
lookup, the stub broker's in-memory queues), never a scan, so the dashboard and `/metrics` stay cheap
whatever the backlog. Listing and requeueing dead letters reads the dead-letter queue itself: those
are operator actions, bounded by `limit`, not figures computed on every page view.

Redis keys (dramatiq/brokers/redis/dispatch.lua): `ns:Q` list of ready ids, `ns:Q.msgs` hash of
ready and in-flight messages, `ns:Q.DQ` / `ns:Q.DQ.msgs` the delay queue (workers hold delayed
messages until their eta), `ns:Q.XQ` sorted set of dead-lettered ids scored by when they died,
`ns:Q.XQ.msgs` their messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import dramatiq
import requests
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.message import Message

from sync.dead_letters import age_seconds, passive_count, redis_client, redis_key

log = logging.getLogger("sxsync.queues")
MANAGEMENT_PORT = 15672
MANAGEMENT_TIMEOUT = 2.0


@dataclass(frozen=True)
class QueueFigures:
    """One queue as ops see it: what waits, what is delayed, what died, how old the oldest is."""

    queue: str
    ready: int  # waiting for a worker
    in_flight: int | None  # fetched by a worker, not yet acknowledged (None: the broker cannot tell)
    delayed: int  # retries and Retry-After waits, held until their eta
    dead: int  # dead letters (kept 7 days)
    oldest_age_seconds: float | None  # how long the oldest ready message has been ready
    oldest_dead_age_seconds: float | None
    backend: str  # redis, rabbitmq, rabbitmq-management, stub

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def current_broker() -> dramatiq.Broker | None:
    """The process's broker if one was set (never `dramatiq.get_broker()`, which would invent one)."""
    return dramatiq.broker.global_broker


def broker_queues(broker: dramatiq.Broker) -> list[str]:
    """The canonical queues declared on the broker (delay queues are reported with their queue)."""
    return sorted(q for q in broker.get_declared_queues() if not q.endswith((".DQ", ".XQ")))


def queue_figures(
    broker: dramatiq.Broker | None, queues: Iterable[str] | None = None, *, now: float | None = None
) -> list[QueueFigures]:
    """Figures of each queue (all declared ones by default); an unreachable broker gives none, logged."""
    if broker is None:
        return []
    names = list(queues) if queues is not None else broker_queues(broker)
    at = time.time() if now is None else now
    try:
        if isinstance(broker, RedisBroker):
            return [_redis_figures(broker, name, at) for name in names]
        if isinstance(broker, RabbitmqBroker):
            return _rabbitmq_figures(broker, names)
        if isinstance(broker, StubBroker):
            return [_stub_figures(broker, name, at) for name in names]
    except Exception as exc:  # the dashboard must render even when the broker is down
        log.warning("queue figures unavailable", extra={"error": type(exc).__name__})
        return []
    return []


def _ready_since(data: bytes | str | None) -> float | None:
    """When a message became ready: its eta if it was delayed, else when it was created (ms)."""
    if not data:
        return None
    try:
        message = Message.decode(data if isinstance(data, bytes) else data.encode())
    except Exception:
        return None
    eta = message.options.get("eta")
    return float(max(message.message_timestamp, eta if isinstance(eta, int | float) else 0))


def _redis_figures(broker: RedisBroker, name: str, now: float) -> QueueFigures:
    """Two round trips of O(1) commands: counts and the oldest ids, then the oldest ready message."""
    key, delayed, dead = redis_key(broker, name), redis_key(broker, dq_name(name)), redis_key(broker, xq_name(name))
    client = redis_client(broker)
    pipe = client.pipeline(transaction=False)
    pipe.llen(key)
    pipe.hlen(f"{key}.msgs")
    pipe.hlen(f"{delayed}.msgs")
    pipe.zcard(dead)
    pipe.lindex(key, 0)
    pipe.zrange(dead, 0, 0, withscores=True)
    ready, held, delayed_count, dead_count, oldest_id, oldest_dead = pipe.execute()
    oldest = _ready_since(client.hget(f"{key}.msgs", oldest_id)) if oldest_id else None
    return QueueFigures(
        queue=name,
        ready=int(ready),
        in_flight=max(0, int(held) - int(ready)),
        delayed=int(delayed_count),
        dead=int(dead_count),
        oldest_age_seconds=age_seconds(oldest, now),
        oldest_dead_age_seconds=age_seconds(oldest_dead[0][1], now) if oldest_dead else None,
        backend="redis",
    )


def _stub_figures(broker: StubBroker, name: str, now: float) -> QueueFigures:
    """The in-process broker's queues (the demo and the embedded default)."""
    queue = broker.queues.get(name)
    delay_queue = broker.queues.get(dq_name(name))
    oldest: float | None = None
    if queue is not None:
        with queue.mutex:
            head = queue.queue[0] if queue.queue else None
        oldest = _ready_since(head)
    return QueueFigures(
        queue=name,
        ready=queue.qsize() if queue is not None else 0,
        in_flight=None,
        delayed=delay_queue.qsize() if delay_queue is not None else 0,
        dead=len(broker.dead_letters_by_queue.get(name, [])),
        oldest_age_seconds=age_seconds(oldest, now),
        oldest_dead_age_seconds=None,
        backend="stub",
    )


def management_url(broker_url: str) -> tuple[str, tuple[str, str]]:
    """RabbitMQ's management API beside an amqp:// URL (same host, port 15672, same credentials)."""
    parts = urlsplit(broker_url)
    host = parts.hostname or "127.0.0.1"
    auth = (parts.username or "guest", parts.password or "guest")
    vhost = parts.path[1:] if parts.path and parts.path != "/" else "/"
    return f"http://{host}:{MANAGEMENT_PORT}/api/queues/{quote(vhost, safe='')}", auth


def _rabbitmq_figures(broker: RabbitmqBroker, names: list[str], broker_url: str | None = None) -> list[QueueFigures]:
    """The management API when it answers (ready, unacked), else a passive declare per queue (counts only)."""
    url = broker_url or _broker_url(broker)
    if url:
        try:
            return _management_figures(url, names)
        except (requests.RequestException, ValueError, KeyError):
            pass  # no management plugin: fall back to AMQP
    return [_passive_figures(broker, name) for name in names]


def _broker_url(broker: RabbitmqBroker) -> str:
    """The URL the broker was made with, if it kept it (dramatiq keeps its connection parameters)."""
    params = getattr(broker, "parameters", None)
    if isinstance(params, list) and params:
        params = params[0]
    host = getattr(params, "host", None)
    credentials = getattr(params, "credentials", None)
    if not host:
        return ""
    user = getattr(credentials, "username", "guest")
    password = getattr(credentials, "password", "guest")
    vhost = getattr(params, "virtual_host", "/")
    return f"amqp://{quote(user)}:{quote(password)}@{host}/{quote(vhost, safe='')}"


def _management_figures(broker_url: str, names: list[str]) -> list[QueueFigures]:
    """One GET per queue family on the management API (the queue, its .DQ and its .XQ)."""
    base, auth = management_url(broker_url)
    session = requests.Session()
    session.trust_env = False

    def get(name: str) -> dict[str, Any]:
        response = session.get(f"{base}/{quote(name, safe='')}", auth=auth, timeout=MANAGEMENT_TIMEOUT)
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    figures = []
    for name in names:
        main, delayed, dead = get(name), get(dq_name(name)), get(xq_name(name))
        head = main.get("head_message_timestamp")
        oldest = float(head) * 1000 if isinstance(head, int | float) else None
        figures.append(
            QueueFigures(
                queue=name,
                ready=int(main.get("messages_ready", 0)),
                in_flight=int(main.get("messages_unacknowledged", 0)),
                delayed=int(delayed.get("messages", 0)),
                dead=int(dead.get("messages", 0)),
                oldest_age_seconds=age_seconds(oldest, time.time()),
                oldest_dead_age_seconds=None,
                backend="rabbitmq-management",
            )
        )
    return figures


def _passive_figures(broker: RabbitmqBroker, name: str) -> QueueFigures:
    """Message counts from passive queue_declare (never creates a queue); ages are unknown over AMQP."""
    counts = []
    for queue in (name, dq_name(name), xq_name(name)):
        counts.append(passive_count(broker, queue))
    return QueueFigures(
        queue=name,
        ready=counts[0],
        in_flight=None,
        delayed=counts[1],
        dead=counts[2],
        oldest_age_seconds=None,
        oldest_dead_age_seconds=None,
        backend="rabbitmq",
    )
