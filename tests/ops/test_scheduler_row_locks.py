"""The scheduler never waits on a sync state a page job holds (PostgreSQL): waiting, it deadlocked with them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from models.tables import SyncState
from sync.scheduler import reconcile, start_all
from tests.ops.conftest import MEMBERS, ORG, Manual, connection_ids, small_world
from web.stack import running_stack


@pytest.fixture
def manual_pg(tmp_path: Path, pg_url: str) -> Iterator[Manual]:
    """`manual` on PostgreSQL only: row locks are what this file is about (SQLite locks the whole file)."""
    from collections import deque

    with running_stack(data_dir=tmp_path, world=small_world(), database_url=pg_url, workers=0) as stack:
        stack.seed_org(ORG, "acme.test", MEMBERS)
        jobs: deque[tuple[int, str, int]] = deque()
        stack.rt.enqueue = lambda c, s, v, _delay: jobs.append((c, s, v))
        yield Manual(stack, jobs)


def in_thread(target: object, timeout: float = 20.0) -> object:
    """Run `target()` in a thread; fail if it is still waiting after `timeout` seconds."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)  # type: ignore[operator]
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the scheduler waited on a row lock a page job holds"
    return result[0]


def test_reconcile_skips_a_stream_a_page_job_holds_and_resends_the_others(manual_pg: Manual) -> None:
    stack, rt = manual_pg.stack, manual_pg.stack.rt
    for email in MEMBERS:
        stack.connect(ORG, email)
    gmail = [connection_ids(stack, email, "gmail")[0] for email in MEMBERS]
    start_all(rt)
    manual_pg.jobs.clear()  # every message lost: all the chains are stalled a lease period later
    later = rt.clock() + timedelta(seconds=rt.settings.lease_seconds + 1)
    with rt.writes.begin() as holder:  # a page job's open transaction on one stream (its lease, its commit)
        held = holder.execute(
            select(SyncState.id).where(SyncState.connection_id == gmail[0]).with_for_update()
        ).scalar_one()
        resent = in_thread(lambda: reconcile(rt, later))
        assert gmail[0] not in {job[0] for job in manual_pg.jobs}
        assert {g for g in gmail[1:]} <= {job[0] for job in manual_pg.jobs}
        holder.execute(update(SyncState).where(SyncState.id == held).values(attempts=0))
    assert resent == len(manual_pg.jobs)
    manual_pg.jobs.clear()
    assert in_thread(lambda: reconcile(rt, later)) == 1, "the stream held before was not resent once free"
    assert [job[0] for job in manual_pg.jobs] == [gmail[0]]


def test_start_all_skips_a_stream_a_page_job_holds(manual_pg: Manual) -> None:
    stack, rt = manual_pg.stack, manual_pg.stack.rt
    for email in MEMBERS[:2]:
        stack.connect(ORG, email)
    first, second = (connection_ids(stack, email, "gmail")[0] for email in MEMBERS[:2])
    with rt.writes.begin() as holder:
        holder.execute(select(SyncState.id).where(SyncState.connection_id == first).with_for_update()).scalar_one()
        in_thread(lambda: start_all(rt, None))
    started = {job[0] for job in manual_pg.jobs}
    assert second in started and first not in started
    manual_pg.jobs.clear()
    in_thread(lambda: start_all(rt, None))
    assert first in {job[0] for job in manual_pg.jobs}
