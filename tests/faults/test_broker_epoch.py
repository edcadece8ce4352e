"""R3's FLUSHALL, the fast way: the scheduler notices the broker lost its queues (its marker key is gone) and
re-enqueues every running chain on that very tick, instead of waiting out the reconciler's lease-long quiet."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import update

from models.tables import SyncState
from sync.broker import broker_was_emptied
from sync.scheduler import reconcile, resend_running
from tests.faults.conftest import MEMBERS, seed, world
from web.queues import current_broker
from web.stack import running_stack

pytestmark = pytest.mark.faults


def test_an_emptied_broker_gets_every_running_chain_back_at_once_and_a_kept_one_gets_none(
    tmp_path: Path, redis_url: str
) -> None:
    with running_stack(data_dir=tmp_path, world=world(), broker_url=redis_url, workers=0) as stack:
        seed(stack, MEMBERS[:2])
        broker = current_broker()
        assert broker_was_emptied(broker)  # a fresh Redis: nothing marked yet (a resend then is harmless)
        assert not broker_was_emptied(broker)  # marked: the queues are what they were
        with stack.rt.writes.begin() as session:  # two chains running, their messages (as if) queued just now
            session.execute(update(SyncState).values(running=True, last_progress_at=stack.rt.clock()))
        sent: list[tuple[int, str, int]] = []
        stack.rt.enqueue = lambda connection, stream, version, delay: sent.append((connection, stream, version))
        assert reconcile(stack.rt, stack.rt.clock()) == 0  # quiet for less than a lease: not stalled yet
        redis.Redis.from_url(redis_url).flushall()
        assert broker_was_emptied(broker)
        assert resend_running(stack.rt, stack.rt.clock()) == 2
        assert sorted(c for c, _, _ in sent) == sorted(set(c for c, _, _ in sent)) and len(sent) == 2
        assert not broker_was_emptied(broker)  # once per loss
    assert not broker_was_emptied(StubBroker()) and not broker_was_emptied(None)  # nothing to lose in-process
