"""Calendar and Contacts through the whole product: one Google consent, three sources, one clean sync."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.tables import Activity, Connection, SyncState
from sandbox.world import generate_world
from web.stack import Stack, running_stack

ORG, DOMAIN, MEMBERS = "acme", "acme.test", ("alice@acme.test", "bob@acme.test")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    world = generate_world(seed=11, size=300, org_domain=DOMAIN, members=MEMBERS)
    with running_stack(data_dir=tmp_path / "stack", world=world) as running:
        now = world.now
        running.rt.clock = lambda: now
        running.seed_org(ORG, DOMAIN, MEMBERS)
        yield running


def test_one_google_consent_connects_and_syncs_mail_calendar_and_contacts(stack: Stack) -> None:
    stack.connect(ORG, "alice@acme.test", "google")
    with stack.rt.sessions() as session:
        rows = session.execute(select(Connection.source, Connection.account, Connection.scopes)).all()
    assert {r.source for r in rows} == {"gmail", "google_calendar", "google_contacts"}
    assert {r.account for r in rows} == {"alice@acme.test"}
    granted = set(rows[0].scopes.split())
    assert {"https://www.googleapis.com/auth/calendar.readonly", "https://www.googleapis.com/auth/userinfo.email",
            "https://www.googleapis.com/auth/contacts.other.readonly"} <= granted  # fmt: skip
    progress = stack.sync(timeout=300)
    assert progress.failed == 0 and progress.running == 0
    with stack.rt.sessions() as session:
        meetings = session.execute(select(func.count()).select_from(Activity).where(Activity.kind == "meeting"))
        assert meetings.scalar_one() > 50
        states = session.execute(select(SyncState.stream, SyncState.cursor, SyncState.last_error)).all()
    assert {s.stream for s in states} == {"messages", "events", "connections", "other_contacts"}
    assert all(s.cursor and s.cursor["phase"] == "incremental" and s.last_error is None for s in states)
    calls = stack.sandbox.google.stats_snapshot()["calls"]
    assert calls["calendar_list"] == 1 and calls["connections"] == 1 and calls["other_contacts"] == 1
