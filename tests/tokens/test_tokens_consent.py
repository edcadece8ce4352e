"""Consent: the state is checked and burnt before the token endpoint sees anything."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from models.tables import AuditEvent, Connection, Credential, OAuthState, utcnow
from tokens.consent import (
    BadState,
    ConsentError,
    ExchangeFailed,
    ExpiredState,
    ProviderMismatch,
    ReplayedState,
    begin_consent,
    complete_consent,
    purge_states,
    save_credential,
)
from tokens.oauth import TokenSet
from tokens.signed import sign

REDIRECT = "http://app.test/oauth/callback/google"


def _begin(store, token_server, vault, key, *, provider="google", now=None):
    org_id, member_id = store.make_member()
    with store.sessions() as session:
        url = begin_consent(
            session,
            org_id=org_id,
            member_id=member_id,
            provider=provider,
            redirect_uri=REDIRECT,
            scopes=["openid"],
            login_hint="alice@acme.test",
            vault=vault,
            key=key,
            client=token_server.client(provider),
            now=now,
        )
    return org_id, member_id, url


def _authorize(url: str) -> tuple[str, str]:
    """Follow the authorize URL like a browser; return (code, state) from the callback."""
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    return query["code"], query["state"]


def _complete(store, token_server, vault, key, *, state, code, provider="google", now=None):
    with store.sessions() as session:
        return complete_consent(
            session,
            provider=provider,
            state=state,
            code=code,
            redirect_uri=REDIRECT,
            vault=vault,
            key=key,
            client=token_server.client(provider),
            now=now,
        )


def test_success_path_stores_state_encrypted_and_returns_tokens(store, token_server, vault, key) -> None:
    org_id, member_id, url = _begin(store, token_server, vault, key)
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params["code_challenge_method"] == "S256" and params["access_type"] == "offline"
    with store.sessions() as session:
        row = session.execute(select(OAuthState).where(OAuthState.org_id == org_id)).scalar_one()
        verifier = vault.decrypt(row.code_verifier)
        assert verifier.encode() not in row.code_verifier
        assert verifier not in url
        assert timedelta(seconds=590) < row.expires_at - utcnow() <= timedelta(seconds=600)
    code, state = _authorize(url)
    result = _complete(store, token_server, vault, key, state=state, code=code)
    assert (result.org_id, result.member_id, result.provider) == (org_id, member_id, "google")
    assert result.tokens.refresh_token and result.tokens.access_token.startswith("at-")
    assert result.tokens.access_token not in repr(result)
    assert token_server.state.calls["token:authorization_code"] == 1
    with store.sessions() as session:
        assert session.get(OAuthState, row.nonce).used_at is not None


def _assert_refused(exc_type, reason, store, token_server, vault, key, **kwargs) -> None:
    with pytest.raises(exc_type) as info:
        _complete(store, token_server, vault, key, **kwargs)
    assert isinstance(info.value, ConsentError)
    assert info.value.reason == reason


def test_forged_state_makes_no_token_call(store, token_server, vault, key) -> None:
    _, _, url = _begin(store, token_server, vault, key)
    code, state = _authorize(url)
    nonce_state = parse_qs(urlsplit(url).query)["state"][0]
    forged = sign({"n": "made-up", "p": "google"}, "oauth-state", 600, b"attacker" * 4)
    for bad in (forged, "garbage", state[:-4] + "AAAA", nonce_state + "x"):
        _assert_refused(BadState, "bad_state", store, token_server, vault, key, state=bad, code=code)
    # signed with our key but for a nonce we never issued
    unknown = sign({"n": "never-issued", "p": "google"}, "oauth-state", 600, key)
    _assert_refused(BadState, "bad_state", store, token_server, vault, key, state=unknown, code=code)
    # a genuine connect-session link is not a state
    link = sign({"org": "acme", "email": "alice@acme.test"}, "connect-session", 3600, key)
    _assert_refused(BadState, "bad_state", store, token_server, vault, key, state=link, code=code)
    assert token_server.state.calls["token"] == 0
    # the genuine state still works afterwards
    _complete(store, token_server, vault, key, state=state, code=code)
    assert token_server.state.calls["token"] == 1


def test_expired_state_makes_no_token_call(store, token_server, vault, key) -> None:
    _, _, url = _begin(store, token_server, vault, key)
    code, state = _authorize(url)
    later = utcnow() + timedelta(minutes=11)
    _assert_refused(ExpiredState, "expired_state", store, token_server, vault, key, state=state, code=code, now=later)
    assert token_server.state.calls["token"] == 0


def test_state_row_expiry_is_checked_too(store, token_server, vault, key) -> None:
    # the signed token would still verify, but the stored row has expired
    org_id, _, url = _begin(store, token_server, vault, key)
    code, state = _authorize(url)
    with store.sessions() as session:
        session.execute(
            OAuthState.__table__.update()
            .where(OAuthState.org_id == org_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    _assert_refused(ExpiredState, "expired_state", store, token_server, vault, key, state=state, code=code)
    assert token_server.state.calls["token"] == 0


def test_replayed_state_makes_no_second_token_call(store, token_server, vault, key) -> None:
    _, _, url = _begin(store, token_server, vault, key)
    code, state = _authorize(url)
    _complete(store, token_server, vault, key, state=state, code=code)
    _assert_refused(ReplayedState, "replayed_state", store, token_server, vault, key, state=state, code=code)
    _assert_refused(ReplayedState, "replayed_state", store, token_server, vault, key, state=state, code="another-code")
    assert token_server.state.calls["token"] == 1


def test_provider_mismatch_makes_no_token_call(store, token_server, vault, key) -> None:
    _, _, url = _begin(store, token_server, vault, key, provider="google")
    code, state = _authorize(url)
    _assert_refused(
        ProviderMismatch,
        "provider_mismatch",
        store,
        token_server,
        vault,
        key,
        state=state,
        code=code,
        provider="hubspot",
    )
    assert token_server.state.calls["token"] == 0
    # the mismatch did not burn the state: the right callback still completes
    _complete(store, token_server, vault, key, state=state, code=code)


def test_exchange_failure_burns_the_state(store, token_server, vault, key) -> None:
    _, _, url = _begin(store, token_server, vault, key)
    code, state = _authorize(url)
    _assert_refused(ExchangeFailed, "exchange_failed", store, token_server, vault, key, state=state, code="wrong-code")
    _assert_refused(ReplayedState, "replayed_state", store, token_server, vault, key, state=state, code=code)
    assert token_server.state.calls["token"] == 1


def test_purge_states(store, token_server, vault, key) -> None:
    _, _, url = _begin(store, token_server, vault, key)
    code, state = _authorize(url)
    _complete(store, token_server, vault, key, state=state, code=code)
    with store.sessions() as session:
        assert purge_states(session) >= 1
        session.commit()
        assert session.execute(select(OAuthState).where(OAuthState.used_at.is_not(None))).first() is None


def test_save_credential_upserts_and_keeps_old_refresh_token(store, vault) -> None:
    _, _, connection_id = store.make_connection()
    first = TokenSet(access_token="at-1", refresh_token="rt-1", expires_at=utcnow() + timedelta(hours=1), scope="x")
    with store.sessions() as session:
        connection = session.get(Connection, connection_id)
        connection.status, connection.last_error = "reauth_required", "refresh token rejected; reconnect"
        credential = save_credential(session, connection_id=connection_id, tokens=first, vault=vault)
        session.commit()
        assert credential.version == 1
        assert session.get(Connection, connection_id).status == "active"  # a new consent heals it
    second = TokenSet(access_token="at-2", refresh_token=None, expires_at=None, scope=None)
    with store.sessions() as session:
        save_credential(session, connection_id=connection_id, tokens=second, vault=vault)
        session.commit()
    with store.sessions() as session:
        credential = session.execute(
            select(Credential)
            .join(Connection, Connection.credential_id == Credential.id)
            .where(Connection.id == connection_id)
        ).scalar_one()
        assert credential.version == 2
        assert vault.decrypt(credential.access_token) == "at-2"
        assert vault.decrypt(credential.refresh_token) == "rt-1"
        assert credential.expires_at is None
        actions = (
            session.execute(select(AuditEvent.action).where(AuditEvent.target == f"connection:{connection_id}"))
            .scalars()
            .all()
        )
        assert actions == ["token.store", "token.store"]
