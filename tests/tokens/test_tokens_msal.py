"""Microsoft through real msal against the identity emulator over TLS: consent, rotation, dead grants."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from models.settings import ProviderSettings
from models.tables import Connection, Credential, utcnow
from sandbox.server import Sandbox
from tokens.access import ReauthRequired, get_access_token, revoke_connection_tokens
from tokens.clients import client_for
from tokens.consent import ExchangeFailed, begin_consent, complete_consent, save_credential
from tokens.msal_client import MsalClient, nonce_for
from tokens.oauth import InvalidGrant, OAuthClient
from tokens.pkce import make_verifier, s256_challenge

pytestmark = pytest.mark.filterwarnings("ignore:Change your:DeprecationWarning")
REDIRECT = "http://127.0.0.1:8000/oauth/callback/microsoft"
SCOPES = ["Mail.ReadBasic", "Calendars.Read", "Contacts.Read", "User.Read", "offline_access"]


@pytest.fixture
def sandbox():
    box = Sandbox(tls=True).start()
    yield box
    box.stop()


def _provider(box: Sandbox) -> ProviderSettings:
    conf = box.microsoft_settings()
    return ProviderSettings(
        name="microsoft",
        client_id=conf["MICROSOFT_CLIENT_ID"],
        client_secret=conf["MICROSOFT_CLIENT_SECRET"],
        auth_url=conf["MICROSOFT_AUTH_URL"],
        token_url=conf["MICROSOFT_TOKEN_URL"],
        revoke_url="",
        api_url=conf["MICROSOFT_API_URL"],
    )


def _client(box: Sandbox) -> OAuthClient:
    return client_for(_provider(box), box.ca_path, 10)


def _code(box: Sandbox, url: str) -> dict[str, str]:
    answer = requests.get(url, allow_redirects=False, timeout=10, verify=box.ca_path)
    assert answer.status_code == 302, answer.text[:300]
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def _sign_in(box: Sandbox, client: OAuthClient, user: str = "alice@acme.test"):
    verifier = make_verifier()
    url = client.authorize_url(
        redirect_uri=REDIRECT, scopes=SCOPES, state="s1", code_challenge=s256_challenge(verifier), login_hint=user
    )
    return client.exchange(_code(box, url)["code"], redirect_uri=REDIRECT, code_verifier=verifier)


def test_factory_picks_msal_for_microsoft_only(sandbox) -> None:
    assert isinstance(_client(sandbox), MsalClient)
    google = ProviderSettings(
        name="google",
        client_id="c",
        client_secret="s",
        auth_url="https://a.test/auth",
        token_url="https://a.test/token",
        revoke_url="https://a.test/revoke",
        api_url="",
    )
    assert type(client_for(google, None, 5)) is OAuthClient
    assert _client(sandbox).can_revoke is False


def test_authorize_url_carries_pkce_nonce_and_no_reserved_scope_twice(sandbox) -> None:
    client = _client(sandbox)
    challenge = s256_challenge(make_verifier())
    url = client.authorize_url(
        redirect_uri=REDIRECT, scopes=SCOPES, state="st", code_challenge=challenge, login_hint="alice@acme.test"
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(sandbox.base_url + "/microsoft/common/oauth2/v2.0/authorize?")
    assert query["code_challenge"] == challenge and query["code_challenge_method"] == "S256"
    assert query["nonce"] == nonce_for(challenge) and query["state"] == "st"
    assert sorted(query["scope"].split()) == sorted([*SCOPES[:4], "offline_access", "openid"])
    assert "profile" not in query["scope"].split()
    with pytest.raises(ValueError):
        client.authorize_url(
            redirect_uri=REDIRECT, scopes=SCOPES, state="st", code_challenge=challenge, extra_params={"state": "x"}
        )


def test_consent_through_the_product_flow_stores_a_refresh_token(store, sandbox, vault, key) -> None:
    client = _client(sandbox)
    org_id, member_id = store.make_member()
    with store.sessions() as session:
        url = begin_consent(
            session,
            org_id=org_id,
            member_id=member_id,
            provider="microsoft",
            redirect_uri=REDIRECT,
            scopes=SCOPES,
            login_hint="bob@acme.test",
            vault=vault,
            key=key,
            client=client,
        )
    query = _code(sandbox, url)
    with store.sessions() as session:
        result = complete_consent(
            session,
            provider="microsoft",
            state=query["state"],
            code=query["code"],
            redirect_uri=REDIRECT,
            vault=vault,
            key=key,
            client=client,
        )
        session.commit()
    tokens = result.tokens
    assert tokens.refresh_token and tokens.access_token and tokens.id_token
    assert tokens.extra["tenant_id"] == sandbox.microsoft.identity.tenant_id
    assert set(tokens.scope.split()) >= {"Mail.ReadBasic", "Calendars.Read", "Contacts.Read", "User.Read"}
    assert "refresh_token" not in repr(tokens) and tokens.refresh_token not in repr(tokens)
    assert sandbox.microsoft.stats.snapshot()["calls"]["token:authorization_code"] == 1


def test_the_emulator_checks_pkce(sandbox) -> None:
    client = _client(sandbox)
    verifier = make_verifier()
    url = client.authorize_url(
        redirect_uri=REDIRECT,
        scopes=SCOPES,
        state="s",
        code_challenge=s256_challenge(verifier),
        login_hint="alice@acme.test",
    )
    code = _code(sandbox, url)["code"]
    with pytest.raises(InvalidGrant) as caught:
        client.exchange(code, redirect_uri=REDIRECT, code_verifier=make_verifier())
    assert "AADSTS50148" in str(caught.value) and verifier not in str(caught.value)


def test_a_tampered_nonce_fails_the_exchange(sandbox) -> None:
    client = _client(sandbox)
    verifier = make_verifier()
    url = client.authorize_url(
        redirect_uri=REDIRECT,
        scopes=SCOPES,
        state="s",
        code_challenge=s256_challenge(verifier),
        login_hint="alice@acme.test",
    )
    code = _code(sandbox, url.replace("nonce=", "nonce=evil"))["code"]
    with pytest.raises(Exception, match="nonce"):
        client.exchange(code, redirect_uri=REDIRECT, code_verifier=verifier)


def test_refresh_rotates_and_by_default_the_old_token_still_works(sandbox) -> None:
    client = _client(sandbox)
    first = _sign_in(sandbox, client)
    second = client.refresh(first.refresh_token)
    assert second.refresh_token and second.refresh_token != first.refresh_token
    assert client.refresh(first.refresh_token).refresh_token  # as the platform documents


def test_strict_rotation_kills_the_old_token(sandbox) -> None:
    sandbox.microsoft.configure(old_refresh_token_uses=0)
    client = _client(sandbox)
    first = _sign_in(sandbox, client)
    second = client.refresh(first.refresh_token)
    assert second.refresh_token and second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    with pytest.raises(InvalidGrant) as caught:
        client.refresh(first.refresh_token)
    assert caught.value.error == "invalid_grant" and "AADSTS70008" in str(caught.value)
    assert client.refresh(second.refresh_token).refresh_token


def test_grace_knob_lets_the_old_token_work_once(sandbox) -> None:
    sandbox.microsoft.configure(old_refresh_token_uses=1)
    client = _client(sandbox)
    first = _sign_in(sandbox, client)
    client.refresh(first.refresh_token)
    assert client.refresh(first.refresh_token).refresh_token  # the grace use
    with pytest.raises(InvalidGrant):
        client.refresh(first.refresh_token)


def test_the_vault_keeps_the_newest_refresh_token(store, sandbox, vault) -> None:
    sandbox.microsoft.configure(old_refresh_token_uses=0)
    client = _client(sandbox)
    tokens = _sign_in(sandbox, client)
    _, _, connection_id = store.make_connection("microsoft")
    with store.sessions() as session:
        save_credential(session, connection_id=connection_id, tokens=tokens, vault=vault)
        session.commit()
    seen = [tokens.refresh_token]
    for hours in (2, 4):
        get_access_token(
            store.sessions,
            connection_id,
            client_for=lambda _: client,
            vault=vault,
            now=utcnow() + timedelta(hours=hours),
        )
        with store.sessions() as session:
            row = session.execute(
                select(Credential)
                .join(Connection, Connection.credential_id == Credential.id)
                .where(Connection.id == connection_id)
            ).scalar_one()
            stored = vault.decrypt(row.refresh_token)
        assert stored and stored not in seen
        seen.append(stored)
    assert client.refresh(seen[-1]).refresh_token  # the stored one is the live one


def test_revoked_consent_is_a_dead_grant(store, sandbox, vault) -> None:
    client = _client(sandbox)
    tokens = _sign_in(sandbox, client)
    _, _, connection_id = store.make_connection("microsoft")
    with store.sessions() as session:
        save_credential(session, connection_id=connection_id, tokens=tokens, vault=vault)
        session.commit()
    sandbox.microsoft.identity.revoke_user("alice@acme.test")
    with pytest.raises(ReauthRequired):
        get_access_token(
            store.sessions, connection_id, client_for=lambda _: client, vault=vault, now=utcnow() + timedelta(hours=2)
        )
    with store.sessions() as session:
        outcome = revoke_connection_tokens(session, connection_id, client, vault)
        session.commit()
    assert outcome.had_credential and not outcome.revoked_remotely and outcome.error is None


def test_unknown_user_and_bad_secret(sandbox) -> None:
    client = _client(sandbox)
    url = client.authorize_url(
        redirect_uri=REDIRECT,
        scopes=SCOPES,
        state="s",
        code_challenge=s256_challenge(make_verifier()),
        login_hint="mallory@evil.test",
    )
    assert _code(sandbox, url)["error"] == "access_denied"
    provider = _provider(sandbox)
    provider.client_secret = "wrong"
    bad = client_for(provider, sandbox.ca_path, 10)
    with pytest.raises(Exception) as caught:
        bad.refresh("1.AXcAnothing")
    assert "wrong" not in str(caught.value) and "invalid_client" in str(caught.value)


def test_network_and_tls_failures_are_oauth_errors(sandbox, tmp_path) -> None:
    from tokens.oauth import OAuthError

    untrusted = client_for(_provider(sandbox), None, 5)  # the sandbox CA is not trusted
    with pytest.raises(OAuthError, match="unreachable"):
        untrusted.refresh("1.AXcAsecret")
    client = _client(sandbox)
    sandbox.stop()
    with pytest.raises(OAuthError) as caught:
        client.refresh("1.AXcAsecret")
    assert "1.AXcAsecret" not in str(caught.value)


def test_consent_fails_cleanly_when_the_code_is_replayed(store, sandbox, vault, key) -> None:
    client = _client(sandbox)
    verifier = make_verifier()
    url = client.authorize_url(
        redirect_uri=REDIRECT,
        scopes=SCOPES,
        state="s",
        code_challenge=s256_challenge(verifier),
        login_hint="alice@acme.test",
    )
    code = _code(sandbox, url)["code"]
    client.exchange(code, redirect_uri=REDIRECT, code_verifier=verifier)
    with pytest.raises(InvalidGrant, match="AADSTS54005"):
        client.exchange(code, redirect_uri=REDIRECT, code_verifier=verifier)
    assert ExchangeFailed.reason == "exchange_failed"
