"""The audit log: queryable by org and time over the API and the CLI, complete for token life, free of tokens."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, select

from models.db import session_factory
from models.network import org_by_slug
from models.tables import AuditEvent, Connection
from privacy.audit import MASK, AuditQuery, query_audit, record
from tests.privacy.helpers import KEYS, api, sxsync
from web.stack import Stack


def audit(stack: Stack, key: str = KEYS["acme"], **params: Any) -> dict[str, Any]:
    response = api(stack, "GET", "/api/audit", key, params={"org": "acme", "limit": 1000} | params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sandbox_tokens(stack: Stack) -> set[str]:
    google = stack.sandbox.google
    with google.lock:
        return set(google.access_tokens) | set(google.refresh_tokens)


def test_connect_sync_disconnect_are_audited_and_no_entry_holds_a_token(two_orgs: Stack) -> None:
    stack = two_orgs
    tokens = sandbox_tokens(stack)
    assert tokens, "the consent flow should have issued tokens"
    with stack.rt.sessions() as s:
        acme = org_by_slug(s, "acme")
        assert acme is not None
        ids = list(s.execute(select(Connection.id).where(Connection.org_id == acme.id)).scalars())
    for connection_id in ids:
        assert api(stack, "DELETE", f"/api/connections/{connection_id}", KEYS["acme"]).status_code == 200
    tokens |= sandbox_tokens(stack)
    body = audit(stack)
    actions = {entry["action"] for entry in body["items"]}
    assert {"connection.connected", "connection.disconnected", "token.revoke"} <= actions
    assert actions & {"token.refresh", "token.store"}
    cli = sxsync(stack, "audit", "--json", "--limit", "1000")
    assert cli.returncode == 0, cli.stderr
    with stack.rt.sessions() as s:
        stored = [json.dumps([e.actor, e.action, e.target, e.details]) for e in s.execute(select(AuditEvent)).scalars()]
    everything = "\n".join([json.dumps(body), cli.stdout, *stored])
    leaked = sorted(token[:8] + "…" for token in tokens if token in everything)
    assert leaked == [], f"tokens found in the audit log: {leaked}"


def test_an_org_sees_only_its_own_entries_and_another_orgs_name_is_a_404(two_orgs: Stack) -> None:
    acme = audit(two_orgs)["items"]
    globex = audit(two_orgs, KEYS["globex"], org="globex")["items"]
    assert acme and globex and not {e["id"] for e in acme} & {e["id"] for e in globex}
    assert api(two_orgs, "GET", "/api/audit", KEYS["acme"], params={"org": "globex"}).status_code == 404
    assert api(two_orgs, "GET", "/api/audit", KEYS["acme"], params={"org": "no-such-org"}).status_code == 404
    assert api(two_orgs, "GET", "/api/audit", "wrong-key", params={"org": "acme"}).status_code == 401


def test_entries_filter_by_time_action_and_limit_newest_first(two_orgs: Stack) -> None:
    items = audit(two_orgs)["items"]
    stamps = [e["at"] for e in items]
    assert stamps == sorted(stamps, reverse=True)
    middle = stamps[len(stamps) // 2]
    assert all(e["at"] >= middle for e in audit(two_orgs, since=middle)["items"])
    assert all(e["at"] < middle for e in audit(two_orgs, until=middle)["items"])
    assert audit(two_orgs, since="2999-01-01")["items"] == []
    tokens_only = audit(two_orgs, action="token.*")["items"]
    assert tokens_only and all(e["action"].startswith("token.") for e in tokens_only)
    exact = audit(two_orgs, action="connection.connected")["items"]
    assert exact and {e["action"] for e in exact} == {"connection.connected"}
    first = audit(two_orgs, limit=1, action="connection.connected")  # each API call adds an event: a fixed kind
    assert len(first["items"]) == 1 and first["has_more"] is (len(exact) > 1) and first["items"][0] == exact[0]


def test_malformed_filters_get_a_clear_422(two_orgs: Stack) -> None:
    for params in ({"since": "yesterday"}, {"until": "2026-13-45"}, {"limit": 0}, {"limit": 5000}):
        response = api(two_orgs, "GET", "/api/audit", KEYS["acme"], params={"org": "acme"} | params)
        assert response.status_code == 422, params


def test_the_cli_shows_one_orgs_log_as_the_api_does(two_orgs: Stack) -> None:
    done = sxsync(two_orgs, "audit", "--org", "acme", "--json", "--limit", "1000")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines == audit(two_orgs)["items"]
    human = sxsync(two_orgs, "audit", "--org", "acme", "--since", "2000-01-01", "--action", "connection.*")
    assert human.returncode == 0 and "connection.connected" in human.stdout
    bad = sxsync(two_orgs, "audit", "--org", "acme", "--since", "soon")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr and "Traceback" not in bad.stderr
    unknown = sxsync(two_orgs, "audit", "--org", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_a_secret_slipped_into_details_is_masked_on_the_way_in_and_out(engine: Engine) -> None:
    with session_factory(engine).begin() as s:
        record(
            s,
            org_id=None,
            actor="t",
            action="t.slip",
            access_token="ya29.secret",
            nested={"refresh_token": "1//x"},
            has_refresh_token=True,
            version=3,
        )
        s.add(AuditEvent(org_id=None, actor="t", action="t.raw", details={"client_secret": "shh"}))
    with session_factory(engine)() as s:
        items, more = query_audit(s, AuditQuery(None, action="t.*"))
    assert not more and {e["action"]: e["details"] for e in items} == {
        "t.slip": {"access_token": MASK, "nested": {"refresh_token": MASK}, "has_refresh_token": True, "version": 3},
        "t.raw": {"client_secret": MASK},
    }


def test_every_api_call_is_audited_by_path_and_status_never_by_query_string(two_orgs: Stack) -> None:
    before = {e["id"] for e in audit(two_orgs, action="api.request", limit=1000)["items"]}
    feed = api(two_orgs, "GET", "/api/network/contacts", KEYS["acme"], params={"org": "acme", "limit": 3})
    paths = api(two_orgs, "GET", "/api/network/intro-paths", KEYS["acme"], params={"org": "acme", "email": "x@y.test"})
    other = api(two_orgs, "GET", "/api/network/contacts", KEYS["acme"], params={"org": "globex"})
    assert (feed.status_code, paths.status_code, other.status_code) == (200, 200, 404)
    events = [e for e in audit(two_orgs, action="api.request", limit=1000)["items"] if e["id"] not in before]
    seen = {(e["actor"], e["target"], e["details"]["status"]) for e in events}
    assert ("api:acme", "GET /api/network/contacts", 200) in seen
    assert ("api:acme", "GET /api/network/intro-paths", 200) in seen
    assert ("api:acme", "GET /api/network/contacts", 404) in seen  # a refused look at another org, too
    assert not any("x@y.test" in json.dumps(e) for e in events), "query strings (addresses) stay out of the log"
    assert not [
        e
        for e in audit(two_orgs, KEYS["globex"], org="globex", action="api.request", limit=1000)["items"]
        if e["actor"] == "api:acme"
    ]
