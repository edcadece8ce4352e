"""Tokens never appear in the database bytes or in logs, even at DEBUG with the HTTP stack talking."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import text

from models.tables import utcnow
from tokens.access import ReauthRequired, get_access_token, revoke_connection_tokens
from tokens.consent import begin_consent, complete_consent, save_credential
from tokens.oauth import OAuthError, TokenSet

REDIRECT = "http://app.test/oauth/callback/{}"


def _full_life(store, token_server, vault, key, provider: str) -> list[str]:
    """Consent, store, refresh (rotated), a failing refresh, revoke; returns every error message seen."""
    errors: list[str] = []
    org_id, member_id = store.make_member()
    client = token_server.client(provider)
    with store.sessions() as session:
        url = begin_consent(session, org_id=org_id, member_id=member_id, provider=provider,
                            redirect_uri=REDIRECT.format(provider), scopes=["x"], login_hint=None,
                            vault=vault, key=key, client=client)
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    with store.sessions() as session:
        result = complete_consent(session, provider=provider, state=query["state"], code=query["code"],
                                  redirect_uri=REDIRECT.format(provider), vault=vault, key=key, client=client)
        _, _, connection_id = store.make_connection(provider)
        save_credential(session, connection_id=connection_id, tokens=result.tokens, vault=vault)
        session.commit()
    token_server.state.rotate = True
    get_access_token(store.sessions, connection_id, client_for=lambda _: client, vault=vault,
                     now=utcnow() + timedelta(hours=2))
    get_access_token(store.sessions, connection_id, client_for=lambda _: client, vault=vault, stale_version=2)
    try:  # a refresh token the server no longer knows: the error echoes it, we must mask it
        client.refresh(result.tokens.refresh_token)
    except OAuthError as exc:
        errors += [str(exc), repr(exc)]
    with store.sessions() as session:
        outcome = revoke_connection_tokens(session, connection_id, client, vault)
        session.commit()
        errors.append(str(outcome))
    # a second connection whose grant dies, and a revoke that fails at the provider
    _, _, dead_id = store.make_connection(provider)
    with store.sessions() as session:
        save_credential(session, connection_id=dead_id, tokens=result.tokens, vault=vault)
        session.commit()
    token_server.state.refresh_error = "invalid_grant"
    with pytest.raises(ReauthRequired) as info:
        get_access_token(store.sessions, dead_id, client_for=lambda _: client, vault=vault,
                         now=utcnow() + timedelta(hours=2))
    errors.append(str(info.value))
    token_server.state.refresh_error = None
    token_server.state.revoke_error = "html"
    with store.sessions() as session:
        errors.append(str(revoke_connection_tokens(session, dead_id, client, vault)))
        session.commit()
    return errors


@pytest.mark.parametrize("provider", ["google", "hubspot"])  # hubspot revokes with the token in the URL path
def test_no_token_in_logs_or_errors_at_debug(store, token_server, vault, key, caplog, provider) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "urllib3.connectionpool", "requests", "tokens", "sqlalchemy.engine"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors = _full_life(store, token_server, vault, key, provider)
    assert token_server.state.revoked, "the revoke went through"
    assert any("/refresh-tokens/" in r.getMessage() or "/revoke" in r.getMessage() for r in caplog.records)
    secrets = [*token_server.state.issued, "test-client-secret-value"]
    assert len(secrets) >= 5
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in logged
        for message in errors:
            assert secret not in message


def test_no_token_in_database_bytes(store, token_server, vault, key) -> None:
    _full_life(store, token_server, vault, key, "google")
    # a credential left in place, too
    _, _, connection_id = store.make_connection()
    with store.sessions() as session:
        save_credential(session, connection_id=connection_id, vault=vault, tokens=TokenSet(
            access_token=token_server.seed_refresh_token(), refresh_token=token_server.seed_refresh_token(),
            expires_at=None, scope=None))
        session.commit()
    secrets = [s.encode() for s in token_server.state.issued]
    if store.kind == "sqlite":
        store.engine.dispose()
        blobs = [p.read_bytes() for p in store.path.parent.glob(store.path.name + "*") if p.is_file()]
        assert blobs and sum(len(b) for b in blobs) > 10_000
    else:
        with store.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT c::text FROM credentials c UNION ALL SELECT s::text FROM oauth_states s "
                "UNION ALL SELECT a::text FROM audit_events a UNION ALL SELECT x::text FROM connections x"
            )).scalars().all()
        blobs = [row.encode() for row in rows]
        # bytea renders as hex: look for the hex of each token too
        secrets += [s.hex().encode() for s in secrets]
    for blob in blobs:
        for secret in secrets:
            assert secret not in blob
