"""Dead-lettered page jobs: list them and put them back on their queue, on Redis, RabbitMQ or the stub.

A dead letter is shown as the page it names (connection, stream, cursor version) and its retry
count, never its raw payload or traceback. Requeueing sends a fresh copy (new id, retries reset);
the page job's version check makes a duplicate harmless.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import xq_name
from dramatiq.message import Message

# Options a dead message carries from its past life; a requeued copy starts afresh without them.
_STALE_OPTIONS = ("retries", "eta", "redis_message_id", "traceback", "dead_at")


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered page job: which page it was, never its raw payload or traceback."""

    queue: str
    id: str  # the broker's handle (Redis message id, RabbitMQ/stub message id)
    actor: str
    connection_id: int | None
    stream: str | None
    cursor_version: int | None
    retries: int
    dead_age_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def age_seconds(timestamp_ms: float | None, now: float) -> float | None:
    """Seconds since a millisecond timestamp, never negative."""
    if timestamp_ms is None:
        return None
    return round(max(0.0, now - timestamp_ms / 1000), 1)


def redis_client(broker: RedisBroker) -> Any:
    """The broker's Redis client (bytes in, bytes out)."""
    return broker.client


def redis_key(broker: RedisBroker, name: str) -> str:
    """A queue's Redis key."""
    return f"{broker.namespace}:{name}"


def passive_count(broker: RabbitmqBroker, queue: str) -> int:
    """One passive declare; a missing queue (the broker closes the channel) counts as empty."""
    import pika.exceptions

    try:
        frame = broker.channel.queue_declare(queue=queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        del broker.channel
        return 0
    return int(frame.method.message_count)


def _dead_letter(queue: str, handle: str, message: Message[Any], dead_at_ms: float | None, now: float) -> DeadLetter:
    """A dead message reduced to the page it names."""
    args = list(message.args)
    connection_id = args[0] if args and isinstance(args[0], int) else None
    stream = args[1] if len(args) > 1 and isinstance(args[1], str) else None
    version = args[2] if len(args) > 2 and isinstance(args[2], int) else None
    retries = message.options.get("retries", 0)
    return DeadLetter(
        queue=queue,
        id=handle,
        actor=message.actor_name,
        connection_id=connection_id,
        stream=stream,
        cursor_version=version,
        retries=retries if isinstance(retries, int) else 0,
        dead_age_seconds=age_seconds(dead_at_ms, now),
    )


def list_dead_letters(
    broker: dramatiq.Broker | None,
    queue: str,
    *,
    connection_id: int | None = None,
    limit: int = 100,
    now: float | None = None,
) -> list[DeadLetter]:
    """Dead letters of a queue (of one connection), newest first, at most `limit`."""
    if broker is None:
        return []
    at = time.time() if now is None else now
    if isinstance(broker, RedisBroker):
        return _redis_dead(broker, queue, connection_id, limit, at)
    if isinstance(broker, StubBroker):
        found = [
            _dead_letter(queue, proxy.message_id, proxy._message, None, at)
            for proxy in reversed(broker.dead_letters_by_queue.get(queue, []))
        ]
        return [d for d in found if connection_id is None or d.connection_id == connection_id][:limit]
    if isinstance(broker, RabbitmqBroker):
        return _rabbit_dead(broker, queue, connection_id, limit, at)
    return []


def _redis_dead(broker: RedisBroker, queue: str, connection_id: int | None, limit: int, now: float) -> list[DeadLetter]:
    """Newest first; filtering by connection reads the dead-letter set in chunks until `limit` match."""
    dead, client = redis_key(broker, xq_name(queue)), redis_client(broker)
    found: list[DeadLetter] = []
    start, chunk = 0, max(limit, 200) if connection_id is not None else limit
    while len(found) < limit:
        ids = client.zrevrange(dead, start, start + chunk - 1, withscores=True)
        if not ids:
            break
        bodies = client.hmget(f"{dead}.msgs", [i for i, _ in ids])
        for (handle, score), body in zip(ids, bodies, strict=True):
            if body is None:
                continue
            letter = _dead_letter(queue, handle.decode(), Message.decode(body), score, now)
            if connection_id is None or letter.connection_id == connection_id:
                found.append(letter)
        start += chunk
    return found[:limit]


def requeue_dead_letters(
    broker: dramatiq.Broker | None,
    queue: str,
    *,
    connection_id: int | None = None,
    handles: Iterable[str] | None = None,
    limit: int = 10_000,
) -> list[DeadLetter]:
    """Move dead letters (of one connection, or the named ones) back onto their queue, retries reset.

    Each one is removed from the dead-letter queue before its fresh copy is enqueued, so two operators
    clicking at once requeue it once; a page job requeued twice would be harmless anyway (its version
    says whether the page was done).
    """
    if broker is None:
        return []
    wanted = set(handles) if handles is not None else None
    if isinstance(broker, RedisBroker):
        return _redis_requeue(broker, queue, connection_id, wanted, limit)
    if isinstance(broker, StubBroker):
        return _stub_requeue(broker, queue, connection_id, wanted, limit)
    if isinstance(broker, RabbitmqBroker):
        return _rabbit_requeue(broker, queue, connection_id, wanted, limit)
    return []


def fresh_copy(message: Message[Any]) -> Message[Any]:
    """The same page job with a new id and no retry history."""
    options = {k: v for k, v in message.options.items() if k not in _STALE_OPTIONS}
    return Message(
        queue_name=message.queue_name.removesuffix(".DQ").removesuffix(".XQ"),
        actor_name=message.actor_name,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        options=options,
    )


def _redis_requeue(
    broker: RedisBroker, queue: str, connection_id: int | None, wanted: set[str] | None, limit: int
) -> list[DeadLetter]:
    """ZREM first (only one caller wins each id), then enqueue the copy, then drop the dead body."""
    dead, client = redis_key(broker, xq_name(queue)), redis_client(broker)
    now = time.time()
    pairs: list[tuple[bytes, float]]
    if wanted is not None:
        candidates = [(h, client.zscore(dead, h)) for h in wanted]
        pairs = [(h.encode(), s) for h, s in candidates if s is not None]
    else:
        pairs = client.zrange(dead, 0, -1, withscores=True)
    done: list[DeadLetter] = []
    for handle, score in pairs:
        if len(done) >= limit:
            break
        body = client.hget(f"{dead}.msgs", handle)
        if body is None:
            continue
        message = Message.decode(body)
        letter = _dead_letter(queue, handle.decode(), message, score, now)
        if connection_id is not None and letter.connection_id != connection_id:
            continue
        if not client.zrem(dead, handle):
            continue  # someone else requeued it meanwhile
        try:
            broker.enqueue(fresh_copy(message))
        except Exception:
            client.zadd(dead, {handle: score})  # put it back: nothing is lost
            raise
        client.hdel(f"{dead}.msgs", handle)
        done.append(letter)
    return done


def _stub_requeue(
    broker: StubBroker, queue: str, connection_id: int | None, wanted: set[str] | None, limit: int
) -> list[DeadLetter]:
    """The in-process broker keeps dead letters in a list per queue."""
    letters = broker.dead_letters_by_queue.get(queue, [])
    now = time.time()
    done: list[DeadLetter] = []
    for proxy in list(letters):
        if len(done) >= limit:
            break
        letter = _dead_letter(queue, proxy.message_id, proxy._message, None, now)
        if (wanted is not None and letter.id not in wanted) or (
            connection_id is not None and letter.connection_id != connection_id
        ):
            continue
        letters.remove(proxy)
        broker.enqueue(fresh_copy(proxy._message))
        done.append(letter)
    return done


def _rabbit_dead(
    broker: RabbitmqBroker, queue: str, connection_id: int | None, limit: int, now: float
) -> list[DeadLetter]:
    """Walk the dead-letter queue with basic_get and put every message back (RabbitMQ has no peek)."""
    channel = broker.channel
    found: list[DeadLetter] = []
    seen: list[int] = []
    try:
        for _ in range(passive_count(broker, xq_name(queue))):
            method, _props, body = channel.basic_get(xq_name(queue), auto_ack=False)
            if method is None:
                break
            seen.append(method.delivery_tag)
            letter = _dead_letter(queue, Message.decode(body).message_id, Message.decode(body), None, now)
            if len(found) < limit and (connection_id is None or letter.connection_id == connection_id):
                found.append(letter)
    finally:
        for tag in seen:
            channel.basic_nack(tag, requeue=True)
    return found


def _rabbit_requeue(
    broker: RabbitmqBroker, queue: str, connection_id: int | None, wanted: set[str] | None, limit: int
) -> list[DeadLetter]:
    """Publish a fresh copy of each match, then ack its dead original (at-least-once, page jobs are idempotent)."""
    channel = broker.channel
    now = time.time()
    done: list[DeadLetter] = []
    keep: list[int] = []
    try:
        for _ in range(passive_count(broker, xq_name(queue))):
            method, _props, body = channel.basic_get(xq_name(queue), auto_ack=False)
            if method is None:
                break
            message = Message.decode(body)
            letter = _dead_letter(queue, message.message_id, message, None, now)
            match = (wanted is None or letter.id in wanted) and (
                connection_id is None or letter.connection_id == connection_id
            )
            if match and len(done) < limit:
                broker.enqueue(fresh_copy(message))
                channel.basic_ack(method.delivery_tag)
                done.append(letter)
            else:
                keep.append(method.delivery_tag)
    finally:
        for tag in keep:
            channel.basic_nack(tag, requeue=True)
    return done
