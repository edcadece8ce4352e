"""In-process checks of the fault machinery: failpoint specs and counting, the solo lock, the crash counter."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from models import failpoints
from models.failpoints import FailpointFired, failpoint, hits, parse
from models.tables import SyncState
from sync.ops_actions import resync_stream, retry_now
from sync.pipeline import MAX_ATTEMPTS, MAX_CRASHES, PARKED_ERROR, SoloLock, run_page
from sync.scheduler import start_all
from tests.faults.conftest import MEMBERS, ORG, seed, world
from web.stack import Stack, running_stack

pytestmark = pytest.mark.faults
Job = tuple[int, str, int]


@pytest.fixture
def armed() -> Iterator[None]:
    """Failpoints configured by the test are disarmed afterwards."""
    yield
    failpoints.configure({})


def test_failpoint_specs_are_parsed_strictly(tmp_path: Path) -> None:
    points = parse("after_commit=kill:1, after_fetch=kill@7,after_checkpoint=raise:2@3", str(tmp_path))
    assert [(p.action, p.times, p.connection_id, p.key) for ps in points.values() for p in ps] == [
        ("kill", 1, None, "after_commit"),
        ("kill", None, 7, "after_fetch@7"),
        ("raise", 2, 3, "after_checkpoint@3"),
    ]
    assert parse("", None) == {}
    for bad in ("after_lunch=kill", "after_fetch", "after_fetch=explode", "after_fetch=kill:0", "after_fetch=kill@x"):
        with pytest.raises(ValueError):
            parse(bad, str(tmp_path))
    with pytest.raises(ValueError, match="SXSYNC_FAILPOINT_DIR"):
        parse("after_commit=kill:1", None)  # a count that a restart would forget


def test_a_counted_failpoint_fires_its_first_times_across_restarts_and_only_for_its_connection(
    tmp_path: Path, armed: None
) -> None:
    env = {failpoints.ENV: "after_commit=raise:2@5", failpoints.DIR_ENV: str(tmp_path)}
    failpoints.configure(env)
    failpoint("after_commit", 4)  # another connection: inert
    failpoint("after_fetch", 5)  # another point: inert
    with pytest.raises(FailpointFired):
        failpoint("after_commit", 5)
    failpoints.configure(env)  # a restarted process: the count lives in the directory
    with pytest.raises(FailpointFired):
        failpoint("after_commit", 5)
    failpoint("after_commit", 5)  # spent
    assert hits(tmp_path, "after_commit", 5) == 3
    assert hits(tmp_path, "after_commit") == 0
    failpoints.configure({})
    failpoint("after_commit", 5)
    assert hits(tmp_path, "after_commit", 5) == 3, "unarmed points count nothing"


def test_a_counted_failpoint_fires_exactly_its_times_under_concurrency(tmp_path: Path, armed: None) -> None:
    failpoints.configure({failpoints.ENV: "after_fetch=raise:5", failpoints.DIR_ENV: str(tmp_path)})
    fired = []

    def hit() -> None:
        for _ in range(20):
            try:
                failpoint("after_fetch", 1)
            except FailpointFired:
                fired.append(1)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(fired), hits(tmp_path, "after_fetch")) == (5, 160)


def test_a_suspect_runs_alone_and_waits_for_no_newcomer() -> None:
    lock = SoloLock()
    events: list[str] = []
    shared_in = threading.Event()
    release_shared = threading.Event()

    def shared(name: str, hold: threading.Event | None) -> None:
        with lock.hold(solo=False):
            events.append(f"{name} in")
            if hold is not None:
                shared_in.set()
                hold.wait(5)
            events.append(f"{name} out")

    def solo() -> None:
        with lock.hold(solo=True):
            events.append("solo in")
            time.sleep(0.05)
            events.append("solo out")

    first = threading.Thread(target=shared, args=("a", release_shared))
    first.start()
    shared_in.wait(5)
    suspect = threading.Thread(target=solo)
    suspect.start()
    time.sleep(0.05)
    late = threading.Thread(target=shared, args=("b", None))  # arrives while the suspect waits: goes after it
    late.start()
    time.sleep(0.05)
    release_shared.set()
    for t in (first, suspect, late):
        t.join(5)
    assert events == ["a in", "a out", "solo in", "solo out", "b in", "b out"]


@pytest.fixture
def manual(tmp_path: Path, store_url: str) -> Iterator[tuple[Stack, deque[Job]]]:
    """A stack whose page jobs are delivered by hand, one Gmail connection."""
    with running_stack(  # one page a job: the crash counts of each page's own job
        data_dir=tmp_path, world=world(), database_url=store_url, workers=0, page_size=25, read_ahead_pages=1
    ) as stack:
        seed(stack, MEMBERS[:1])
        jobs: deque[Job] = deque()
        stack.rt.enqueue = lambda c, s, v, _delay: jobs.append((c, s, v))
        start_all(stack.rt)
        yield stack, jobs


def _state(stack: Stack) -> SyncState:
    with stack.rt.sessions() as session:
        return session.execute(select(SyncState)).scalar_one()


def _crashed(stack: Stack, count: int, version: int) -> None:
    """As if `count` page jobs at `version` took the lease and their worker died (lease left to expire)."""
    with stack.rt.writes.begin() as session:
        session.execute(update(SyncState).values(crash_count=count, crash_version=version))


def test_a_page_that_crashed_its_workers_three_times_is_parked_without_a_fetch_and_ops_retry_clears_it(
    manual: tuple[Stack, deque[Job]],
) -> None:
    stack, jobs = manual
    job = jobs.popleft()
    calls = stack.sandbox.google.stats_snapshot()
    _crashed(stack, MAX_CRASHES, job[2])
    assert run_page(stack.rt, *job).status == "parked"
    state = _state(stack)
    assert (state.running, state.failed, state.last_error) == (False, True, PARKED_ERROR)
    assert (state.crash_count, state.crash_version, state.lease_owner, state.pages_total) == (3, job[2], None, 0)
    assert stack.sandbox.google.stats_snapshot() == calls, "a parked page is not fetched"
    assert not jobs
    assert run_page(stack.rt, *job).status == "parked", "a duplicate delivery parks again, harmlessly"

    retry_now(stack.rt, state.connection_id, actor="ops@acme.test", org=ORG)
    state = _state(stack)
    assert (state.running, state.failed, state.crash_count, state.crash_version) == (True, False, 0, None)
    assert run_page(stack.rt, *jobs.popleft()).status == "committed"
    assert (_state(stack).crash_count, _state(stack).crash_version) == (0, None)


def test_crash_counts_are_per_version_and_cleared_by_any_end_the_job_lives_to_see(
    manual: tuple[Stack, deque[Job]], armed: None, tmp_path: Path
) -> None:
    stack, jobs = manual
    job = jobs.popleft()
    _crashed(stack, MAX_CRASHES, job[2] - 1)  # an older version's count: this page starts again at 1
    assert run_page(stack.rt, *job).status == "committed"
    assert (_state(stack).crash_count, _state(stack).crash_version) == (0, None)

    job = jobs.popleft()
    _crashed(stack, MAX_CRASHES - 1, job[2])  # two deaths: this delivery is the last chance, and it lives
    failpoints.configure({failpoints.ENV: "after_fetch=raise:1", failpoints.DIR_ENV: str(tmp_path)})
    with pytest.raises(FailpointFired):
        run_page(stack.rt, *job)  # an exception is an end the job lives to see: a failed attempt, no crash
    state = _state(stack)
    assert (state.attempts, state.crash_count, state.crash_version, state.failed) == (1, 0, None, False)
    assert run_page(stack.rt, *job).status == "committed"

    job = jobs.popleft()
    _crashed(stack, MAX_CRASHES, job[2])
    resync_stream(stack.rt, job[0], actor="ops@acme.test", org=ORG)
    assert (_state(stack).crash_count, _state(stack).crash_version) == (0, None)


def test_a_page_whose_storing_raises_every_time_ends_failed_after_its_attempts_not_in_a_silent_loop(
    manual: tuple[Stack, deque[Job]], armed: None
) -> None:
    stack, jobs = manual
    job = jobs.popleft()
    failpoints.configure({failpoints.ENV: "after_fetch=raise"})  # as an ingest bug would, on every delivery
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with pytest.raises(FailpointFired):
            run_page(stack.rt, *job)  # Dramatiq's retry: the same message again
        state = _state(stack)
        assert (state.attempts, state.lease_owner, state.crash_count) == (attempt, None, 0)
    assert (state.failed, state.running, state.last_error) == (True, False, "FailpointFired")
