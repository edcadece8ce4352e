"""Who may see and steer: the admin key (Bearer or login cookie + CSRF), org API keys, clear 404s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from models.tables import AuditEvent, Connection
from tests.ops_ui.conftest import (
    ADMIN_KEY,
    DOMAIN,
    MEMBERS,
    ORG,
    ORG_KEY,
    OTHER_KEY,
    OTHER_ORG,
    connection_id,
    small_world,
)
from web.stack import Stack, running_stack

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def stack(tmp_path: Path, store_url: str) -> Iterator[Stack]:
    """Two orgs, Alice of acme connected and synced (in-process broker)."""
    with running_stack(
        data_dir=tmp_path,
        world=small_world(size=60),
        database_url=store_url,
        admin_key=ADMIN_KEY,
        api_keys=f"{ORG}={ORG_KEY},{OTHER_ORG}={OTHER_KEY}",
    ) as running:
        running.seed_org(ORG, DOMAIN, MEMBERS)
        running.seed_org(OTHER_ORG, "globex.test", ("gina@globex.test",))
        running.connect(ORG, MEMBERS[0])
        assert running.sync().failed == 0
        yield running


def url(stack: Stack, path: str) -> str:
    return stack.rt.settings.public_url + path


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_KEY}"}])
def test_without_the_admin_key_ops_and_metrics_answer_401_and_no_data(stack: Stack, headers: dict[str, str]) -> None:
    for path in ("/ops", "/ops/report.json", "/metrics", "/ops?org=acme"):
        response = requests.get(url(stack, path), headers=headers | {"Accept": "text/html"}, timeout=30)
        assert response.status_code == 401, path
        assert "alice@acme.test" not in response.text and "sxsync_connections" not in response.text
    forged = requests.get(url(stack, "/ops"), cookies={"sxsync_ops": "eyJkIjp7fX0.AAAA"}, timeout=30)
    assert forged.status_code == 401 and "alice@acme.test" not in forged.text
    action = requests.post(url(stack, f"/ops/orgs/{ORG}/connections/1/pause"), headers=headers, timeout=30)
    assert action.status_code == 401
    with stack.rt.sessions() as session:
        assert session.execute(select(Connection.status).where(Connection.id == 1)).scalar_one() == "active"


def test_login_form_sets_an_httponly_lax_cookie_and_actions_need_its_csrf_token(stack: Stack) -> None:
    browser = requests.Session()
    wrong = browser.post(url(stack, "/ops/login"), data={"key": "nope"}, allow_redirects=False, timeout=30)
    assert wrong.status_code == 401 and "sxsync_ops" not in wrong.headers.get("set-cookie", "")
    ok = browser.post(url(stack, "/ops/login"), data={"key": ADMIN_KEY}, allow_redirects=False, timeout=30)
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and ADMIN_KEY not in cookie
    page = browser.get(url(stack, "/ops"), timeout=30)
    assert page.status_code == 200 and "alice@acme.test" in page.text
    gmail = connection_id(stack, MEMBERS[0], "gmail")
    target = url(stack, f"/ops/orgs/{ORG}/connections/{gmail}/pause")
    assert browser.post(target, data={}, timeout=30).status_code == 403
    assert browser.post(target, data={"csrf": "0" * 40}, timeout=30).status_code == 403
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    done = browser.post(target, data={"csrf": csrf}, timeout=30)
    assert done.status_code == 200 and f"Connection {gmail} paused." in done.text
    with stack.rt.sessions() as session:
        assert session.get(Connection, gmail).status == "paused"  # type: ignore[union-attr]
        event = session.execute(select(AuditEvent).where(AuditEvent.action == "ops.connection.paused")).scalar_one()
        assert event.target == f"connection:{gmail}" and event.actor == "ops:web"
    other = requests.Session()  # another browser's token does not fit this cookie
    other.post(url(stack, "/ops/login"), data={"key": ADMIN_KEY}, timeout=30)
    assert (
        other.post(
            url(stack, f"/ops/orgs/{ORG}/connections/{gmail}/resume"), data={"csrf": csrf + "x"}, timeout=30
        ).status_code
        == 403
    )


def test_actions_on_unknown_or_other_orgs_connections_are_clear_404s(stack: Stack) -> None:
    gmail = connection_id(stack, MEMBERS[0], "gmail")
    for path, needle in (
        (f"/ops/orgs/{OTHER_ORG}/connections/{gmail}/pause", f"no connection {gmail} in org 'globex'"),
        (f"/ops/orgs/{ORG}/connections/999999/resync", "no connection 999999 in org 'acme'"),
        (f"/ops/orgs/{ORG}/connections/abc/retry", "no connection 'abc'"),
        (f"/ops/orgs/{ORG}/connections/{gmail}/explode", "unknown action"),
    ):
        response = requests.post(url(stack, path), headers=ADMIN, timeout=30)
        assert response.status_code == 404, path
        assert needle in response.json()["detail"]
    stream = requests.post(
        url(stack, f"/ops/orgs/{ORG}/connections/{gmail}/resync"), headers=ADMIN, data={"stream": "nope"}, timeout=30
    )
    assert stream.status_code == 404 and "no stream 'nope'" in stream.json()["detail"]
    dead = requests.post(
        url(stack, f"/ops/orgs/{ORG}/connections/{gmail}/requeue"), headers=ADMIN, data={"handle": "x1"}, timeout=30
    )
    assert dead.status_code == 404 and "no dead letter 'x1'" in dead.json()["detail"]
    with stack.rt.sessions() as session:
        assert session.get(Connection, gmail).status == "active"  # type: ignore[union-attr]


def test_api_connections_lists_the_callers_org_only(stack: Stack) -> None:
    response = requests.get(
        url(stack, "/api/connections"), params={"org": ORG}, headers={"Authorization": f"Bearer {ORG_KEY}"}, timeout=30
    )
    assert response.status_code == 200
    body = response.json()
    assert body["org"] == ORG
    assert {(c["member"], c["source"], c["status"], c["sync_status"]) for c in body["connections"]} == {
        (MEMBERS[0], "gmail", "active", "idle"),
        (MEMBERS[0], "google_calendar", "active", "idle"),
        (MEMBERS[0], "google_contacts", "active", "idle"),
    }
    assert all(c["needs_reauthorization"] is False and c["records"] >= 0 for c in body["connections"])
    cross = requests.get(
        url(stack, "/api/connections"),
        params={"org": ORG},
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
        timeout=30,
    )
    assert cross.status_code == 404
    mine = requests.get(
        url(stack, "/api/connections"),
        params={"org": OTHER_ORG},
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
        timeout=30,
    )
    assert mine.status_code == 200 and mine.json()["connections"] == []
    assert (
        requests.get(
            url(stack, "/api/connections"), params={"org": ORG}, headers={"Authorization": "Bearer wrong"}, timeout=30
        ).status_code
        == 401
    )
    assert (
        requests.get(
            url(stack, "/api/connections"),
            params={"org": ORG},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        ).status_code
        == 401
    )
