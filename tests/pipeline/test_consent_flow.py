"""The OAuth authorization-code flow with PKCE, over HTTP, as a rep's browser drives it."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import requests
from sqlalchemy import select

from models.tables import Connection, SyncState
from tests.pipeline.conftest import ORG
from web.app import connect_session
from web.stack import Stack


def browser() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def walk_to_callback(stack: Stack, email: str) -> tuple[requests.Session, str]:
    """Connect page → our redirect → the provider's consent; return the callback URL it sends back."""
    b = browser()
    token = connect_session(stack.rt, ORG, email)
    first = b.get(f"{stack.rt.settings.public_url}/connect/google", params={"session": token}, allow_redirects=False)
    assert first.status_code == 302
    authorize = first.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["login_hint"] == [email] and query["access_type"] == ["offline"]
    assert query["scope"] == ["https://www.googleapis.com/auth/gmail.metadata"]
    consent = b.get(authorize, allow_redirects=False, verify=stack.sandbox.ca_path)
    assert consent.status_code == 302
    return b, consent.headers["location"]


def token_calls(stack: Stack) -> int:
    return sum(stack.sandbox.google.token_calls.values())


def test_consent_creates_a_connection_for_the_mailbox_the_provider_reports(stack: Stack) -> None:
    b, callback = walk_to_callback(stack, "alice@acme.test")
    done = b.get(callback)
    assert done.status_code == 200 and "alice@acme.test is connected" in done.text
    set_cookie = done.headers.get("set-cookie", "")
    assert "sxsync_consent=" in set_cookie  # cleared on success
    with stack.rt.sessions() as s:
        (conn,) = s.execute(select(Connection)).scalars().all()
        assert (conn.source, conn.account, conn.status) == ("gmail", "alice@acme.test", "active")
        assert s.execute(select(SyncState.stream).where(SyncState.connection_id == conn.id)).scalars().all() == [
            "messages"
        ]


def test_tampered_state_is_refused_before_any_token_call(stack: Stack) -> None:
    b, callback = walk_to_callback(stack, "alice@acme.test")
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = query["state"][:-2] + ("AA" if not query["state"].endswith("AA") else "BB")
    before = token_calls(stack)
    refused = b.get(urlunsplit(parts._replace(query=urlencode(query))))
    assert refused.status_code == 400 and "could not be verified" in refused.text
    assert token_calls(stack) == before


def test_replayed_callback_is_refused_and_does_not_reach_the_token_endpoint(stack: Stack) -> None:
    b, callback = walk_to_callback(stack, "bob@acme.test")
    assert b.get(callback).status_code == 200
    before = token_calls(stack)
    # an attacker who captured the callback URL and forged the browser binding still hits the single-use state
    replay = browser()
    state = parse_qs(urlsplit(callback).query)["state"][0]
    replay.cookies.set("sxsync_consent", hashlib.sha256(state.encode()).hexdigest()[:32], path="/oauth/callback")
    replayed = replay.get(callback)
    assert replayed.status_code == 400 and "already used" in replayed.text
    assert token_calls(stack) == before


def test_callback_from_another_browser_is_refused(stack: Stack) -> None:
    _, callback = walk_to_callback(stack, "alice@acme.test")
    before = token_calls(stack)
    stranger = browser().get(callback)
    assert stranger.status_code == 400
    assert token_calls(stack) == before


def test_denied_consent_ends_on_a_clear_page_and_connects_nothing(stack: Stack) -> None:
    stack.sandbox.google.deny_consent = True
    b = browser()
    token = connect_session(stack.rt, ORG, "alice@acme.test")
    response = b.get(
        f"{stack.rt.settings.public_url}/connect/google", params={"session": token}, verify=stack.sandbox.ca_path
    )
    assert response.status_code == 400 and "not granted" in response.text
    with stack.rt.sessions() as s:
        assert s.execute(select(Connection)).first() is None


def test_forged_connect_link_is_refused(stack: Stack) -> None:
    b = browser()
    page = b.get(f"{stack.rt.settings.public_url}/connect", params={"session": "forged.link"})
    assert page.status_code == 400 and "not valid" in page.text
