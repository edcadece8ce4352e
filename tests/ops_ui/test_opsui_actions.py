"""The ops actions on the real store: what each changes, what it enqueues, what it audits, and 404s."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from models.tables import AuditEvent, Connection
from sync.ops_actions import (
    NotAllowed,
    NotFound,
    dead_letters_of,
    pause_connection,
    requeue_dead_letters,
    resume_connection,
    resync_stream,
    retry_now,
)
from sync.pipeline import run_page
from sync.scheduler import start_all
from tests.ops_ui.conftest import DOMAIN, MEMBERS, ORG, OTHER_ORG, connection_id, set_state, small_world, state
from web.stack import Stack, running_stack

Job = tuple[int, str, int]


@dataclass
class Manual:
    """A stack whose page jobs land in `jobs`, delivered by the test."""

    stack: Stack
    jobs: deque[Job]

    def drain(self) -> None:
        while self.jobs:
            run_page(self.stack.rt, *self.jobs.popleft())


@pytest.fixture
def manual(tmp_path: Path, store_url: str) -> Iterator[Manual]:
    with running_stack(data_dir=tmp_path, world=small_world(size=120), database_url=store_url, workers=0) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        stack.seed_org(OTHER_ORG, "globex.test", ("gina@globex.test",))
        jobs: deque[Job] = deque()
        stack.rt.enqueue = lambda c, s, v, _delay: jobs.append((c, s, v))
        stack.connect(ORG, MEMBERS[0])
        ready = Manual(stack, jobs)
        start_all(stack.rt)
        ready.drain()
        yield ready


def audit(stack: Stack, action: str) -> list[AuditEvent]:
    with stack.rt.sessions() as session:
        return list(session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def test_pause_and_resume(manual: Manual) -> None:
    rt, gmail = manual.stack.rt, connection_id(manual.stack, MEMBERS[0], "gmail")
    result = pause_connection(rt, gmail, actor="ops:test", org=ORG)
    assert result.message() == f"connection {gmail}: paused"
    with rt.sessions() as session:
        assert session.get_one(Connection, gmail).status == "paused"
    [event] = audit(manual.stack, "ops.connection.paused")
    assert (event.actor, event.target, event.details["previous"]) == ("ops:test", f"connection:{gmail}", "active")
    assert not manual.jobs
    resumed = resume_connection(rt, gmail, actor="ops:test", org=ORG)
    assert resumed.streams == ["messages"]
    assert list(manual.jobs) == [(gmail, "messages", state(manual.stack, gmail, "messages").version)]
    assert state(manual.stack, gmail, "messages").running
    manual.drain()
    assert not state(manual.stack, gmail, "messages").running
    assert audit(manual.stack, "ops.connection.resumed")[0].details["streams"] == ["messages"]


def test_resync_starts_a_new_generation_that_converges(manual: Manual) -> None:
    rt, gmail = manual.stack.rt, connection_id(manual.stack, MEMBERS[0], "gmail")
    before = state(manual.stack, gmail, "messages")
    result = resync_stream(rt, gmail, "messages", actor="ops:test", org=ORG)
    assert result.detail == {"enqueued": True}
    after = state(manual.stack, gmail, "messages")
    assert (after.cursor, after.version, after.generation, after.in_full_pass, after.running) == (
        None,
        before.version + 1,
        before.generation + 1,
        True,
        True,
    )
    assert list(manual.jobs) == [(gmail, "messages", before.version + 1)]
    run_page(rt, gmail, "messages", before.version)  # a message of the old version is now stale: harmless
    manual.drain()
    done = state(manual.stack, gmail, "messages")
    assert (done.running, done.in_full_pass, done.failed) == (False, False, False)
    assert done.cursor is not None and done.records_total == before.records_total  # nothing changed at the source
    assert audit(manual.stack, "ops.stream.resync")[0].details["streams"] == ["messages"]


def test_resync_of_a_paused_connection_waits_for_resume(manual: Manual) -> None:
    rt, gmail = manual.stack.rt, connection_id(manual.stack, MEMBERS[0], "gmail")
    pause_connection(rt, gmail, actor="ops:test", org=ORG)
    assert resync_stream(rt, gmail, None, actor="ops:test", org=ORG).detail == {"enqueued": False}
    assert not manual.jobs and state(manual.stack, gmail, "messages").cursor is None
    resume_connection(rt, gmail, actor="ops:test", org=ORG)
    manual.drain()
    assert state(manual.stack, gmail, "messages").cursor is not None


def test_retry_now_clears_the_failure_and_sends_the_current_page(manual: Manual) -> None:
    rt, gmail = manual.stack.rt, connection_id(manual.stack, MEMBERS[0], "gmail")
    set_state(manual.stack, gmail, "messages", failed=True, attempts=6, running=False)
    version = state(manual.stack, gmail, "messages").version
    assert retry_now(rt, gmail, None, actor="ops:test", org=ORG).streams == ["messages"]
    s = state(manual.stack, gmail, "messages")
    assert (s.failed, s.attempts, s.running) == (False, 0, True)
    assert list(manual.jobs) == [(gmail, "messages", version)]
    manual.drain()
    assert not state(manual.stack, gmail, "messages").running
    assert retry_now(rt, gmail, None, actor="ops:test").streams == []  # nothing failing: nothing sent
    pause_connection(rt, gmail, actor="ops:test")
    with pytest.raises(NotAllowed):
        retry_now(rt, gmail, "messages", actor="ops:test")


def test_every_action_refuses_unknown_ids_and_other_orgs(manual: Manual) -> None:
    rt, gmail = manual.stack.rt, connection_id(manual.stack, MEMBERS[0], "gmail")
    calls = [
        lambda cid, org: pause_connection(rt, cid, actor="t", org=org),
        lambda cid, org: resume_connection(rt, cid, actor="t", org=org),
        lambda cid, org: resync_stream(rt, cid, None, actor="t", org=org),
        lambda cid, org: retry_now(rt, cid, None, actor="t", org=org),
        lambda cid, org: requeue_dead_letters(rt, cid, actor="t", org=org),
        lambda cid, org: dead_letters_of(rt, cid, org=org),
    ]
    for call in calls:
        with pytest.raises(NotFound, match=f"no connection {gmail} in org 'globex'"):
            call(gmail, OTHER_ORG)
        with pytest.raises(NotFound, match="no connection 424242"):
            call(424242, None)
    with pytest.raises(NotFound, match="no stream 'inbox'"):
        resync_stream(rt, gmail, "inbox", actor="t", org=ORG)
    with rt.sessions() as session:
        assert session.get_one(Connection, gmail).status == "active"
        assert not session.execute(select(AuditEvent).where(AuditEvent.action.startswith("ops."))).first()
    assert requeue_dead_letters(rt, gmail, actor="t", org=ORG).detail == {"requeued": 0}
