"""Disconnect with a grace period: the data waits for a reconnect, then the sweep purges it; the connect
page's Disconnect button; the org policy that sets it (API; the CLI in tests/cli)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from models.tables import AuditEvent, Connection, Sighting
from privacy.disconnect import purge_due_disconnects
from privacy.periods import disconnect_grace_days, retention_days
from tests.pipeline.conftest import DOMAIN, GMAIL_ONLY, MEMBERS, ORG, small_world
from web.app import connect_session
from web.stack import Stack, running_stack

ALICE = "alice@acme.test"


def grace_stack(tmp_path: Path, store_url: str, policy: dict[str, Any]) -> Iterator[Stack]:
    with running_stack(
        data_dir=tmp_path, world=small_world(), database_url=store_url, api_keys="acme=key-acme"
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY | policy)
        stack.connect(ORG, ALICE)
        assert stack.sync().failed == 0
        yield stack


@pytest.fixture
def week_of_grace(tmp_path: Path, store_url: str) -> Iterator[Stack]:
    yield from grace_stack(tmp_path, store_url, {"disconnect_grace_days": 7})


def delete(stack: Stack, connection_id: int) -> requests.Response:
    return requests.delete(
        f"{stack.rt.settings.public_url}/api/connections/{connection_id}",
        headers={"Authorization": "Bearer key-acme"},
        timeout=30,
    )


def sightings(stack: Stack) -> int:
    with stack.rt.sessions() as s:
        return int(s.execute(select(func.count()).select_from(Sighting)).scalar_one())


def connection_id(stack: Stack) -> int:
    with stack.rt.sessions() as s:
        return int(s.execute(select(Connection.id)).scalar_one())


def test_a_grace_period_keeps_the_data_until_it_passes_then_the_sweep_purges_it(week_of_grace: Stack) -> None:
    stack = week_of_grace
    stored = sightings(stack)
    assert stored > 0
    response = delete(stack, connection_id(stack))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "revoked" and body["erased"] == 0
    due = stack.rt.clock() + timedelta(days=7)
    assert body["purge_due_at"][:10] == due.strftime("%Y-%m-%d")
    assert all(g.revoked for g in stack.sandbox.google.grants.values())  # access ends at once, only data waits
    assert sightings(stack) == stored
    assert purge_due_disconnects(stack.rt, stack.rt.clock() + timedelta(days=6)) == []
    (purged,) = purge_due_disconnects(stack.rt, stack.rt.clock() + timedelta(days=8))
    assert (purged.org, purged.connection_id) == (ORG, connection_id(stack))
    assert purged.erased > 0
    assert sightings(stack) == 0
    assert purge_due_disconnects(stack.rt, stack.rt.clock() + timedelta(days=9)) == []  # idempotent
    with stack.rt.sessions() as s:
        actions = s.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars().all()
    assert actions.index("privacy.disconnect_purge_scheduled") < actions.index("privacy.disconnect_purged")


def test_reconnecting_within_the_grace_keeps_the_data_and_cancels_the_purge(week_of_grace: Stack) -> None:
    stack = week_of_grace
    stored = sightings(stack)
    assert delete(stack, connection_id(stack)).status_code == 200
    stack.connect(ORG, ALICE)
    assert purge_due_disconnects(stack.rt, stack.rt.clock() + timedelta(days=30)) == []
    assert sightings(stack) == stored
    with stack.rt.sessions() as s:
        assert s.execute(select(Connection.status, Connection.purge_due_at)).one() == ("active", None)
        reconnected = s.execute(
            select(AuditEvent.details).where(AuditEvent.action == "connection.reconnected")
        ).scalar_one()
    assert reconnected["purge_cancelled"] is True


def test_the_connect_page_disconnect_button_revokes_and_purges_at_once_by_default(
    tmp_path: Path, sqlite_url: str
) -> None:
    for stack in grace_stack(tmp_path, sqlite_url, {}):
        base = stack.rt.settings.public_url
        token = connect_session(stack.rt, ORG, ALICE)
        page = requests.get(f"{base}/connect", params={"session": token}, timeout=30)
        form = re.search(r'<form method="post" action="(/connect/google/disconnect)"', page.text)
        assert form is not None, "a connected provider shows a Disconnect button"
        forged = requests.post(f"{base}{form.group(1)}", data={"session": token + "x"}, timeout=30)
        assert forged.status_code == 400 and sightings(stack) > 0  # no valid signed link, nothing happens
        done = requests.post(f"{base}{form.group(1)}", data={"session": token}, timeout=30)
        assert done.status_code == 200
        assert "Disconnected" in done.text and "records it brought were deleted" in done.text
        assert sightings(stack) == 0
        assert all(g.revoked for g in stack.sandbox.google.grants.values())
        again = requests.post(f"{base}{form.group(1)}", data={"session": token}, timeout=30)
        assert again.status_code == 404  # nothing left connected there
        page = requests.get(f"{base}/connect", params={"session": token}, timeout=30)
        assert "/connect/google/disconnect" not in page.text


def test_the_connect_page_says_when_the_data_of_a_disconnect_in_grace_goes(week_of_grace: Stack) -> None:
    stack = week_of_grace
    base = stack.rt.settings.public_url
    token = connect_session(stack.rt, ORG, ALICE)
    done = requests.post(f"{base}/connect/google/disconnect", data={"session": token}, timeout=30)
    due = (stack.rt.clock() + timedelta(days=7)).strftime("%Y-%m-%d")
    assert done.status_code == 200 and f"deleted on {due} unless you reconnect" in done.text
    page = requests.get(f"{base}/connect", params={"session": token}, timeout=30)
    assert f"deleted on {due}" in page.text and "Reconnect Google" in page.text


def test_the_org_policy_is_set_through_the_api_and_refuses_what_the_privacy_policy_forbids(
    tmp_path: Path, sqlite_url: str
) -> None:
    with running_stack(data_dir=tmp_path, world=small_world(), database_url=sqlite_url, api_keys="acme=k") as stack:
        url = f"{stack.rt.settings.public_url}/api/orgs/acme"
        auth = {"Authorization": "Bearer k"}

        def put(policy: dict[str, Any]) -> requests.Response:
            return requests.put(url, json={"domains": [DOMAIN], "policy": policy}, headers=auth, timeout=30)

        ok = put({"disconnect_grace_days": 14, "retention_days": 180, "sources": ["gmail"]})
        assert ok.status_code == 200, ok.text
        assert ok.json()["policy"] == {"disconnect_grace_days": 14, "retention_days": 180, "sources": ["gmail"]}
        assert put({"retention_days": 90}).json()["policy"]["disconnect_grace_days"] == 14  # other keys kept
        for refused in (
            {"retention_days": 366},  # never longer than the policy's year
            {"disconnect_grace_days": -1},
            {"retention_dayz": 30},  # a typo must not silently do nothing
            {"sources": ["myspace"]},
            {"weights": {"email_out": -1}},
        ):
            answer = put(refused)
            assert answer.status_code == 422, (refused, answer.text)
        assert put({}).json()["policy"]["retention_days"] == 90  # the refused changes changed nothing


@pytest.mark.parametrize(
    ("policy", "retention", "grace"),
    [
        ({}, 365, 0),
        ({"retention_days": 30, "disconnect_grace_days": 14}, 30, 14),
        ({"retention_days": 5000, "disconnect_grace_days": 5000}, 365, 365),  # capped at the policy's year
        ({"retention_days": "soon", "disconnect_grace_days": None}, 365, 0),  # malformed: the defaults
    ],
)
def test_periods_come_from_the_org_policy_and_never_exceed_one_year(
    policy: dict[str, Any], retention: int, grace: int
) -> None:
    assert (retention_days(policy), disconnect_grace_days(policy)) == (retention, grace)
