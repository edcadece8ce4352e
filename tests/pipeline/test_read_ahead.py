"""A page job fetches the next page while it stores one, and keeps the stream's lease for it (read-ahead)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

import sync.pipeline as pipeline
from connectors.base import Page, RateLimited
from models.tables import Connection, SyncState
from sync.pipeline import run_page
from sync.scheduler import start_all
from tests.pipeline.conftest import DOMAIN, GMAIL_ONLY, MEMBERS, ORG, small_world
from web.stack import Stack, running_stack

Job = tuple[int, str, int, float]
READ_AHEAD = 3


@pytest.fixture
def manual_stack(tmp_path: Path, store_url: str) -> Iterator[tuple[Stack, deque[Job]]]:
    """One rep's Gmail in pages of 50 (about 8), read ahead 3 pages a job; page jobs land in a list.

    The pass's first page is stored alone (nothing is read ahead while a new connection waits for its
    first data): the tests start at the job of its second page.
    """
    with running_stack(
        data_dir=tmp_path, world=small_world(size=900), database_url=store_url, workers=0, page_size=50,
        read_ahead_pages=READ_AHEAD,
    ) as stack:  # fmt: skip
        stack.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
        jobs: deque[Job] = deque()
        stack.rt.enqueue = lambda c, s, v, delay: jobs.append((c, s, v, delay))
        stack.connect(ORG, MEMBERS[0])
        start_all(stack.rt)
        first = run_page(stack.rt, *jobs.popleft()[:3])
        assert (first.status, first.version, len(jobs)) == ("committed", 1, 1)
        yield stack, jobs


def state_of(stack: Stack) -> SyncState:
    with stack.rt.sessions() as session:
        return session.execute(select(SyncState)).scalar_one()


def at_failpoint(monkeypatch: pytest.MonkeyPatch, name: str, action: Callable[[int], None]) -> None:
    """Run `action(connection_id)` when the pipeline passes the failpoint `name` (after the real failpoint)."""
    real = pipeline.failpoint

    def hooked(reached: str, connection_id: int) -> None:
        real(reached, connection_id)
        if reached == name:
            action(connection_id)

    monkeypatch.setattr(pipeline, "failpoint", hooked)


def emulator_calls(stack: Stack) -> int:
    """Gmail API requests the emulator served (batch parts count once: the request), the consent's included."""
    calls = stack.sandbox.google.stats_snapshot()["calls"]
    return sum(n for kind, n in calls.items() if kind.split(":", 1)[0] in ("profile", "list", "batch", "history"))


def test_a_job_stores_its_page_and_those_read_ahead_then_enqueues_the_next_with_the_lease_free(
    manual_stack: tuple[Stack, deque[Job]],
) -> None:
    stack, jobs = manual_stack
    connection_id, stream, version, _ = jobs.popleft()
    outcome = run_page(stack.rt, connection_id, stream, version)
    state = state_of(stack)
    assert (outcome.status, outcome.version) == ("committed", version + READ_AHEAD)
    assert (state.version, state.pages_total) == (version + READ_AHEAD, 1 + READ_AHEAD)
    assert (state.lease_owner, state.lease_until, state.crash_count, state.crash_version) == (None, None, 0, None)
    assert [job[:3] for job in jobs] == [(connection_id, stream, version + READ_AHEAD)]
    while jobs:  # the rest of the chain, READ_AHEAD pages a job
        run_page(stack.rt, *jobs.popleft()[:3])
    state = state_of(stack)
    assert not state.running and state.cursor["phase"] == "incremental"
    assert state.pages_total > READ_AHEAD
    consent = 1  # the consent page asked the API for the account's address
    assert state.api_calls_total == emulator_calls(stack) - consent, "no page was fetched twice, none thrown away"


def test_a_connection_paused_while_its_page_is_stored_stores_nothing_read_ahead(
    manual_stack: tuple[Stack, deque[Job]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, jobs = manual_stack

    def pause(connection_id: int) -> None:
        with stack.rt.writes.begin() as session:
            session.execute(update(Connection).where(Connection.id == connection_id).values(status="paused"))

    at_failpoint(monkeypatch, "after_commit", pause)
    connection_id, stream, version, _ = jobs.popleft()
    outcome = run_page(stack.rt, connection_id, stream, version)
    state = state_of(stack)
    assert (outcome.status, state.version, state.pages_total) == ("committed", version + 1, 2)
    assert (state.running, state.lease_owner) == (False, None), "the chain stops, the lease is free"
    assert (state.crash_count, state.crash_version) == (0, None), "no crash is left counted at the dropped page"
    assert not jobs


def test_a_page_read_ahead_that_is_throttled_holds_the_chain_and_resends_its_page(
    manual_stack: tuple[Stack, deque[Job]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, jobs = manual_stack
    real_fetch = pipeline._fetch
    fetches: list[object] = []

    def throttled_second(*args: object) -> object:
        fetches.append(args)
        if len(fetches) == 2:
            raise RateLimited("429 from the emulator's budget", retry_after=7.0)
        return real_fetch(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_fetch", throttled_second)
    connection_id, stream, version, _ = jobs.popleft()
    outcome = run_page(stack.rt, connection_id, stream, version)
    state = state_of(stack)
    assert (outcome.status, outcome.version) == ("rate_limited", version + 1)
    assert (state.version, state.pages_total) == (version + 1, 2)
    assert (state.lease_owner, state.crash_count, state.crash_version) == (None, 0, None)
    assert state.lease_until is not None, "the reconciler stays off until Retry-After has passed"
    [(c, s, v, delay)] = jobs
    assert (c, s, v) == (connection_id, stream, version + 1) and delay >= 7.0


def test_a_worker_killed_while_reading_ahead_is_healed_by_its_redelivered_message(
    manual_stack: tuple[Stack, deque[Job]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, jobs = manual_stack

    def die(connection_id: int) -> None:
        raise SystemExit("worker killed while the next page was being read ahead")

    real_failpoint = pipeline.failpoint
    at_failpoint(monkeypatch, "after_checkpoint", die)
    first = jobs.popleft()[:3]
    with pytest.raises(SystemExit):
        run_page(stack.rt, *first)
    monkeypatch.setattr(pipeline, "failpoint", real_failpoint)
    state = state_of(stack)
    assert (state.version, state.crash_count, state.crash_version) == (first[2] + 1, 1, first[2] + 1)
    assert state.lease_owner is not None and not jobs, "the dead job held the lease for its next page"
    # the broker redelivers the unacked message: it finds its page done and enqueues the next one, once
    assert run_page(stack.rt, *first).status == "stale"
    [(connection_id, stream, version, _)] = jobs
    assert version == first[2] + 1
    assert run_page(stack.rt, connection_id, stream, version).status == "busy", "until the dead lease runs out"
    with stack.rt.writes.begin() as session:
        session.execute(update(SyncState).values(lease_until=stack.rt.clock() - timedelta(seconds=1)))
    jobs.clear()
    outcome = run_page(stack.rt, connection_id, stream, version)
    assert outcome.status == "committed" and outcome.version == version + READ_AHEAD
    while jobs:
        run_page(stack.rt, *jobs.popleft()[:3])
    state = state_of(stack)
    assert not state.running and not state.failed and state.crash_count == 0


def test_a_pass_first_page_is_stored_alone_and_its_next_page_enqueued(
    manual_stack: tuple[Stack, deque[Job]],
) -> None:
    stack, jobs = manual_stack  # the fixture delivered the first page's job
    state = state_of(stack)
    assert (state.version, state.pages_total, state.lease_owner) == (1, 1, None)
    assert [job[2] for job in jobs] == [1]


def test_a_page_that_read_nothing_and_kept_its_cursor_is_not_followed_by_a_read_ahead(
    manual_stack: tuple[Stack, deque[Job]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, jobs = manual_stack
    state = state_of(stack)
    fetched: list[object] = []

    def nothing_new(rt: object, connection: object, stream: str, cursor: object) -> Page:
        fetched.append(cursor)
        return Page([], [], state.cursor, done=False, api_calls=1)  # a source stuck on its cursor

    monkeypatch.setattr(pipeline, "_fetch", nothing_new)
    connection_id, stream, version, _ = jobs.popleft()
    outcome = run_page(stack.rt, connection_id, stream, version)
    assert (outcome.status, outcome.version, len(fetched)) == ("committed", version + 1, 1)
    assert state_of(stack).idle_pages == 1 and [job[2] for job in jobs] == [version + 1]
