"""Every page job is safe to run twice, in any interleaving the broker's at-least-once delivery allows."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.network import iter_contacts
from models.tables import Activity, Interaction, Participant, Relationship, Sighting, SyncState
from sync.pipeline import acquire_lease, run_page
from sync.scheduler import start_all
from tests.pipeline.conftest import DOMAIN, GMAIL_ONLY, MEMBERS, ORG, small_world
from web.stack import Stack, running_stack

Job = tuple[int, str, int]


@pytest.fixture
def manual_stack(tmp_path: Path, store_url: str) -> Iterator[tuple[Stack, deque[Job]]]:
    """A stack whose page jobs land in a list the test delivers by hand."""
    with running_stack(
        data_dir=tmp_path, world=small_world(size=900), database_url=store_url, workers=0, page_size=100,
        read_ahead_pages=1,  # one page a job: every page's own message is what these tests deliver by hand
    ) as stack:  # fmt: skip
        stack.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
        jobs: deque[Job] = deque()
        stack.rt.enqueue = lambda c, s, v, _delay: jobs.append((c, s, v))
        for email in MEMBERS[:2]:
            stack.connect(ORG, email)
        yield stack, jobs


def snapshot(stack: Stack) -> tuple[dict[str, int], list[tuple[tuple[str, ...], object]]]:
    with stack.rt.sessions() as s:
        rows = {
            t.__tablename__: s.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (Activity, Sighting, Participant, Interaction, Relationship)
        }
        network = sorted(
            (tuple(c["emails"]), [(r["member"], r["interactions"]) for r in c["relationships"]])
            for c in iter_contacts(s, 1)
        )
    return rows, network


def drain(stack: Stack, jobs: deque[Job], *, twice: bool) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    while jobs:
        job = jobs.popleft()
        for _ in range(2 if twice else 1):
            status = run_page(stack.rt, *job).status
            outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes


def test_every_message_delivered_twice_gives_the_same_store_as_once(
    manual_stack: tuple[Stack, deque[Job]], tmp_path: Path
) -> None:
    stack, jobs = manual_stack
    start_all(stack.rt)
    outcomes = drain(stack, jobs, twice=True)
    twice = snapshot(stack)
    assert outcomes["stale"] == outcomes["committed"] + outcomes["done"]  # each duplicate found its page done
    assert twice[0]["activities"] > 100
    with running_stack(
        data_dir=tmp_path / "once",
        world=small_world(size=900),
        database_url=f"sqlite:///{tmp_path / 'once.db'}",
        workers=0,
        page_size=100,
    ) as once:
        once.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
        once_jobs: deque[Job] = deque()
        once.rt.enqueue = lambda c, s, v, _delay: once_jobs.append((c, s, v))
        for email in MEMBERS[:2]:
            once.connect(ORG, email)
        start_all(once.rt)
        drain(once, once_jobs, twice=False)
        assert snapshot(once) == twice


def test_a_crash_between_commit_and_enqueue_is_healed_by_the_late_duplicate(
    manual_stack: tuple[Stack, deque[Job]],
) -> None:
    stack, jobs = manual_stack
    start_all(stack.rt)
    first = jobs.popleft()

    def die(*_: object) -> None:
        raise SystemExit("worker killed after commit, before enqueue")

    stack.rt.enqueue = die
    with pytest.raises(SystemExit):
        run_page(stack.rt, *first)
    stack.rt.enqueue = lambda c, s, v, _delay: jobs.append((c, s, v))
    # the broker redelivers the unacked message: it only re-enqueues the next page, once
    assert run_page(stack.rt, *first).status == "stale"
    assert run_page(stack.rt, *first).status == "stale"
    assert [j for j in jobs if j[0] == first[0]] == [(first[0], first[1], first[2] + 1)]


def test_a_running_page_holds_the_stream_lease(manual_stack: tuple[Stack, deque[Job]]) -> None:
    stack, jobs = manual_stack
    start_all(stack.rt)
    connection_id, stream, version = jobs.popleft()
    with stack.rt.sessions() as s:
        state_id = s.execute(
            select(SyncState.id).where(SyncState.connection_id == connection_id, SyncState.stream == stream)
        ).scalar_one()
    assert acquire_lease(stack.rt, state_id, version, "another-worker")
    assert run_page(stack.rt, connection_id, stream, version).status == "busy"
