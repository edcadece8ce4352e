"""Queue figures and dead letters read from the real brokers: Redis keys, RabbitMQ, the stub broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from sync.dead_letters import list_dead_letters, requeue_dead_letters
from web.queues import queue_figures

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _noop(connection_id: int, stream: str, version: int) -> None:
    """A page job's signature, doing nothing."""


def declare(broker: dramatiq.Broker, queue: str) -> dramatiq.Actor[[int, str, int], None]:
    return dramatiq.Actor(_noop, broker=broker, actor_name="sync_page", queue_name=queue, priority=0, options={})


def nack_one(broker: dramatiq.Broker, queue: str) -> None:
    """Fetch one message and nack it: the broker itself dead-letters it."""
    consumer = broker.consume(queue, prefetch=1, timeout=200)
    for _ in range(100):
        message = next(consumer)
        if message is not None:
            consumer.nack(message)
            consumer.close()
            return
    raise AssertionError("no message to nack")


@pytest.fixture
def redis_broker(redis_url: str) -> Iterator[RedisBroker]:
    broker = RedisBroker(url=redis_url)  # type: ignore[no-untyped-call]
    yield broker
    broker.close()


def test_redis_figures_count_ready_in_flight_delayed_and_dead_with_constant_calls(redis_broker: RedisBroker) -> None:
    actor = declare(redis_broker, "sync")
    for version in range(4):
        actor.send(7, "messages", version)
    actor.send_with_options(args=(7, "messages", 99), delay=600_000)
    nack_one(redis_broker, "sync")  # 3 ready, 1 dead
    consumer = redis_broker.consume("sync", prefetch=1, timeout=200)
    while next(consumer) is None:  # one fetched and not acked: in flight
        pass
    time.sleep(0.05)
    calls: list[str] = []
    original = redis_broker.client.execute_command

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(str(args[0]))
        return original(*args, **kwargs)

    redis_broker.client.execute_command = counting  # type: ignore[method-assign]
    [figures] = queue_figures(redis_broker, ["sync"])
    redis_broker.client.execute_command = original  # type: ignore[method-assign]
    assert (figures.ready, figures.in_flight, figures.delayed, figures.dead) == (2, 1, 1, 1)
    assert figures.oldest_age_seconds is not None and 0 <= figures.oldest_age_seconds < 60
    assert figures.oldest_dead_age_seconds is not None and figures.backend == "redis"
    assert len(calls) <= 2  # one pipeline of O(1) commands, one HGET of the oldest message
    consumer.close()


def test_redis_dead_letters_are_listed_by_connection_and_requeued_once(redis_broker: RedisBroker) -> None:
    actor = declare(redis_broker, "sync")
    actor.send(1, "messages", 3)
    nack_one(redis_broker, "sync")
    time.sleep(0.01)  # distinct dead-letter times: newest first is then well defined
    actor.send(2, "events", 5)
    nack_one(redis_broker, "sync")
    everything = list_dead_letters(redis_broker, "sync")
    assert [(d.connection_id, d.stream, d.cursor_version) for d in everything] == [(2, "events", 5), (1, "messages", 3)]
    [mine] = list_dead_letters(redis_broker, "sync", connection_id=1)
    assert mine.actor == "sync_page" and mine.dead_age_seconds is not None
    assert requeue_dead_letters(redis_broker, "sync", connection_id=1, handles=["not-an-id"]) == []
    [done] = requeue_dead_letters(redis_broker, "sync", connection_id=1)
    assert done.id == mine.id
    assert requeue_dead_letters(redis_broker, "sync", connection_id=1) == []  # a second click finds nothing
    [figures] = queue_figures(redis_broker, ["sync"])
    assert (figures.ready, figures.dead) == (1, 1)
    consumer = redis_broker.consume("sync", prefetch=1, timeout=200)
    message = None
    while message is None:
        message = next(consumer)
    assert tuple(message.args) == (1, "messages", 3) and "retries" not in message.options
    consumer.ack(message)
    consumer.close()


def _boom(connection_id: int, stream: str, version: int) -> None:
    raise RuntimeError("page failed")


def test_stub_broker_figures_and_dead_letters() -> None:
    broker = StubBroker()
    actor = dramatiq.Actor(
        _boom, broker=broker, actor_name="sync_page", queue_name="sync", priority=0, options={"max_retries": 0}
    )
    actor.send(4, "messages", 1)
    actor.send_with_options(args=(4, "messages", 2), delay=600_000)
    [figures] = queue_figures(broker, None)
    assert (figures.queue, figures.ready, figures.delayed, figures.dead, figures.backend) == ("sync", 1, 1, 0, "stub")
    assert figures.oldest_age_seconds is not None
    broker.flush("sync.DQ")
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        broker.join("sync", fail_fast=False, timeout=10_000)
    finally:
        worker.stop()
    letters = list_dead_letters(broker, "sync", connection_id=4)
    assert [(d.connection_id, d.cursor_version) for d in letters] == [(4, 1)]
    assert [d.cursor_version for d in requeue_dead_letters(broker, "sync", connection_id=4)] == [1]
    assert queue_figures(broker, ["sync"])[0].ready == 1 and list_dead_letters(broker, "sync") == []


def test_rabbitmq_figures_by_passive_declare_and_dead_letters_requeued() -> None:
    queue = f"opsui_{uuid.uuid4().hex[:10]}"
    try:
        broker = RabbitmqBroker(url=RABBITMQ_URL)
        broker.connection  # noqa: B018  (connect now: an unreachable RabbitMQ fails here, clearly)
    except Exception as exc:
        pytest.fail(f"RabbitMQ unreachable at {RABBITMQ_URL}: {exc}")
    try:
        assert queue_figures(broker, [queue])[0].ready == 0  # not declared yet: passive declare says empty
        actor = declare(broker, queue)
        for version in range(3):
            actor.send(5, "messages", version)
        actor.send(6, "events", 1)
        deadline = time.monotonic() + 10
        while queue_figures(broker, [queue])[0].ready < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        consumer = broker.consume(queue, prefetch=1, timeout=200)
        for _ in range(2):  # the first two (connection 5, versions 0 and 1) die
            message = None
            while message is None:
                message = next(consumer)
            consumer.nack(message)
        consumer.close()
        deadline = time.monotonic() + 10
        while queue_figures(broker, [queue])[0].dead < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        [figures] = queue_figures(broker, [queue])
        assert (figures.ready, figures.dead) == (2, 2) and figures.backend.startswith("rabbitmq")
        listed = list_dead_letters(broker, queue, connection_id=5)
        assert sorted(d.cursor_version or 0 for d in listed) == [0, 1]
        assert queue_figures(broker, [queue])[0].dead == 2  # listing puts them back
        done = requeue_dead_letters(broker, queue, connection_id=5, handles=[listed[0].id])
        assert [d.id for d in done] == [listed[0].id]
        deadline = time.monotonic() + 10
        while queue_figures(broker, [queue])[0].ready < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (queue_figures(broker, [queue])[0].ready, queue_figures(broker, [queue])[0].dead) == (3, 1)
    finally:
        channel = broker.channel
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
        broker.close()
