"""The scheduler: due streams start once, lost chains come back, paused and revoked ones never start."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import event, update

from models.tables import Connection, SyncState
from sync.inprocess import wait_for_chains, worker_threads
from sync.pipeline import acquire_lease, run_page
from sync.runtime import system_clock
from sync.scheduler import reconcile, start_all, tick
from tests.ops.conftest import DOMAIN, MEMBERS, ORG, Job, Manual, connection_ids, small_world, sync_states
from web.stack import Stack, running_stack

MESSAGES = "dramatiq:sync.msgs"  # the Redis hash of the sync queue's pending messages


def drain(manual: Manual) -> list[str]:
    statuses = []
    while manual.jobs:
        statuses.append(run_page(manual.stack.rt, *manual.jobs.popleft()).status)
    return statuses


def jobs_of(states: list[SyncState]) -> list[Job]:
    return sorted((s.connection_id, s.stream, s.version) for s in states)


def test_tick_starts_each_due_stream_exactly_once(manual: Manual) -> None:
    stack, rt = manual.stack, manual.stack.rt
    for email in MEMBERS[:2]:
        stack.connect(ORG, email)  # a new connection's streams are due at once
    streams = sync_states(stack)
    now = rt.clock()
    assert tick(rt, now) == (len(streams), 0)
    assert sorted(manual.jobs) == jobs_of(streams)
    assert tick(rt, now) == (0, 0), "a second tick right after started a stream again"
    assert tick(rt, now + timedelta(seconds=5)) == (0, 0)
    assert start_all(rt) == 0, "`sxsync sync` restarted a running chain"
    assert len(manual.jobs) == len(streams)

    assert "done" in drain(manual)
    assert all(not s.running and s.last_success_at for s in sync_states(stack))
    poll = timedelta(seconds=rt.settings.poll_seconds)
    assert tick(rt, rt.clock() + poll / 2) == (0, 0), "an idle stream started before its poll interval"
    later = rt.clock() + poll + timedelta(seconds=1)
    assert tick(rt, later) == (len(streams), 0)
    assert tick(rt, later) == (0, 0)
    assert sorted(manual.jobs) == jobs_of(sync_states(stack))


def test_a_lost_chain_is_resent_once_per_lease_period_not_on_every_tick(manual: Manual) -> None:
    stack, rt = manual.stack, manual.stack.rt
    stack.connect(ORG, "alice@acme.test")
    gmail = connection_ids(stack, "alice@acme.test", "gmail")[0]
    t0 = rt.clock()
    lease = timedelta(seconds=rt.settings.lease_seconds)
    tick(rt, t0)
    lost = next(job for job in manual.jobs if job[0] == gmail)
    manual.jobs.remove(lost)
    drain(manual)  # the other streams finish
    assert reconcile(rt, t0 + lease / 2) == 0, "resent while the chain could still be moving"
    assert reconcile(rt, t0 + lease + timedelta(seconds=1)) == 1
    for seconds in (2, 15, 30):  # later ticks while the resent message waits behind a backlog
        assert reconcile(rt, t0 + lease + timedelta(seconds=seconds)) == 0
    assert list(manual.jobs) == [lost]
    manual.jobs.clear()  # lost again
    assert reconcile(rt, t0 + 2 * lease + timedelta(seconds=2)) == 1
    assert list(manual.jobs) == [lost]
    assert drain(manual)[-1] == "done"
    assert not any(s.running for s in sync_states(stack))


def test_paused_and_reauth_required_connections_are_never_started(manual: Manual) -> None:
    stack, rt = manual.stack, manual.stack.rt
    for email in MEMBERS:
        stack.connect(ORG, email)
    alice, bob, carol = (sync_states(stack, email) for email in MEMBERS)
    now = rt.clock()
    with rt.sessions.begin() as session:
        paused = connection_ids(stack, "alice@acme.test")
        session.execute(update(Connection).where(Connection.id.in_(paused)).values(status="paused"))
        revoked = connection_ids(stack, "bob@acme.test")
        session.execute(update(Connection).where(Connection.id.in_(revoked)).values(status="reauth_required"))
        # alice's chains even look stalled (running, no lease, no progress for an hour); bob's long overdue
        session.execute(
            update(SyncState)
            .where(SyncState.connection_id.in_(paused))
            .values(running=True, last_progress_at=now - timedelta(hours=1))
        )
        session.execute(
            update(SyncState).where(SyncState.connection_id.in_(revoked)).values(next_run_at=now - timedelta(days=1))
        )
    assert tick(rt, now) == (len(carol), 0)
    assert sorted(manual.jobs) == jobs_of(carol)
    assert start_all(rt) == 0
    quiet = now + timedelta(seconds=3 * rt.settings.lease_seconds)
    assert reconcile(rt, quiet) == len(carol)  # carol's chains, whose messages the test holds; not alice's
    assert {c for c, _, _ in manual.jobs} == {s.connection_id for s in carol}
    # a message for a paused connection that was already queued ends its chain without a provider call
    google = stack.sandbox.google
    requests_before = google.stats_snapshot()["http_requests"]
    assert run_page(rt, alice[0].connection_id, alice[0].stream, alice[0].version).status == "inactive"
    assert google.stats_snapshot()["http_requests"] == requests_before
    assert not sync_states(stack, "alice@acme.test")[0].running
    assert tick(rt, quiet + 2 * timedelta(seconds=rt.settings.lease_seconds)) == (0, len(carol))
    assert {c for c, _, _ in manual.jobs} == {s.connection_id for s in carol}
    assert not any(s.running for s in sync_states(stack, "bob@acme.test")) and bob


@pytest.fixture
def redis_stack(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Stack]:
    """Real Redis broker, no workers yet: messages wait in Redis until the test starts some."""
    with running_stack(
        data_dir=tmp_path, world=small_world(), database_url=pg_url, broker_url=redis_url, workers=0, page_size=50
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        for email in MEMBERS[:2]:
            stack.connect(ORG, email)
        yield stack


def test_a_running_chain_whose_message_was_lost_is_reenqueued_after_its_lease_and_completes(
    redis_stack: Stack, redis_url: str
) -> None:
    stack, rt = redis_stack, redis_stack.rt
    queue = redis.Redis.from_url(redis_url)
    streams = len(sync_states(stack))
    now = rt.clock()
    assert tick(rt, now) == (streams, 0)
    assert queue.hlen(MESSAGES) == streams
    queue.flushdb()  # every message lost (say, a Redis failover without persistence)

    # a worker took alice's Gmail page and died: its lease ran out long ago
    gmail = connection_ids(stack, "alice@acme.test", "gmail")[0]
    state = next(s for s in sync_states(stack) if s.connection_id == gmail)
    rt.clock = lambda: system_clock() - timedelta(seconds=3 * rt.settings.lease_seconds)
    try:
        assert acquire_lease(rt, state.id, state.version, "dead-worker")
    finally:
        rt.clock = system_clock
    assert reconcile(rt, now) == 1, "only the chain whose lease expired is stalled yet"
    assert queue.hlen(MESSAGES) == 1
    assert reconcile(rt, now + timedelta(seconds=rt.settings.lease_seconds + 1)) == streams
    assert queue.hlen(MESSAGES) == streams + 1

    with worker_threads(stack.broker, 2):
        final = wait_for_chains(rt, timeout=120, reconcile_every=3600)
    assert (final.running, final.failed) == (0, 0)
    for synced in sync_states(stack):
        assert not synced.running and synced.last_success_at and synced.lease_owner is None
        assert synced.version > 0 and synced.last_error is None
    gmail_state = next(s for s in sync_states(stack) if s.connection_id == gmail)
    assert gmail_state.pages_total >= 2 and gmail_state.records_total > 0


def test_the_stalled_chain_query_walks_running_streams_not_every_connection(tmp_path: Path) -> None:
    """SQLite's plan for the reconciler: the partial index of running streams, never a scan of connections."""
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("SELECT sync_states.id \nFROM sync_states"):
            probe = cursor.connection.cursor()
            probe.execute("EXPLAIN QUERY PLAN " + statement, params)
            plans.append(" | ".join(str(row[-1]) for row in probe.fetchall()))
            probe.close()

    with running_stack(data_dir=tmp_path, world=small_world(), workers=0) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        rt = stack.rt
        assert rt.engine.dialect.name == "sqlite"
        event.listen(rt.engine, "before_cursor_execute", explain)
        try:
            assert reconcile(rt, rt.clock()) == 0
        finally:
            event.remove(rt.engine, "before_cursor_execute", explain)
    assert len(plans) == 1, plans
    assert "USING INDEX ix_sync_states_running_lease" in plans[0] and "SCAN connections" not in plans[0], plans[0]


def test_a_new_connection_starts_syncing_from_the_oauth_callback_not_the_next_tick(tmp_path: Path) -> None:
    with running_stack(data_dir=tmp_path, world=small_world(), workers=0, start_on_connect=True) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        jobs: list[Job] = []
        stack.rt.enqueue = lambda c, s, v, _delay: jobs.append((c, s, v))
        stack.connect(ORG, "alice@acme.test")
        streams = sync_states(stack)
        assert streams and all(s.running for s in streams)
        assert sorted(jobs) == jobs_of(streams), "the callback did not send every new stream's first page"
        assert tick(stack.rt, stack.rt.clock()) == (0, 0), "the tick started a stream the callback had started"


def test_a_broker_down_at_the_callback_still_connects_and_the_chain_comes_back(tmp_path: Path) -> None:
    with running_stack(data_dir=tmp_path, world=small_world(), workers=0, start_on_connect=True) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        jobs: list[Job] = []

        def broker_down(c: int, s: str, v: int, _delay: float) -> None:
            raise redis.ConnectionError("broker unreachable")

        stack.rt.enqueue = broker_down
        assert "is connected" in stack.connect(ORG, "alice@acme.test").text
        stack.rt.enqueue = lambda c, s, v, _delay: jobs.append((c, s, v))
        later = stack.rt.clock() + timedelta(seconds=stack.rt.settings.lease_seconds + 1)
        streams = sync_states(stack)
        assert tick(stack.rt, later) == (0, len(streams)), "the reconciler did not resend the unsent first pages"
        assert sorted(jobs) == jobs_of(streams)
