"""The OAuth client over real HTTP against the loopback token server (no mocks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tokens.oauth import InvalidGrant, OAuthClient, OAuthError, TokenSet
from tokens.pkce import make_verifier, s256_challenge


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _consent(server, client: OAuthClient, verifier: str, redirect_uri: str = "http://app.test/cb") -> str:
    url = client.authorize_url(redirect_uri=redirect_uri, scopes=["a", "b"], state="st",
                               code_challenge=s256_challenge(verifier))
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    return _query(answer.headers["Location"])["code"]


def test_google_authorize_url(token_server) -> None:
    client = token_server.client("google")
    url = client.authorize_url(redirect_uri="https://app.test/oauth/callback/google",
                               scopes=["openid", "https://www.googleapis.com/auth/gmail.readonly"],
                               state="s1", code_challenge="c" * 43, login_hint="alice@acme.test")
    assert url.startswith(f"{token_server.base_url}/authorize?")
    assert "%20" in url and "+" not in url
    assert _query(url) == {
        "response_type": "code", "client_id": "test-client",
        "redirect_uri": "https://app.test/oauth/callback/google",
        "scope": "openid https://www.googleapis.com/auth/gmail.readonly", "state": "s1",
        "code_challenge": "c" * 43, "code_challenge_method": "S256", "access_type": "offline",
        "include_granted_scopes": "true", "prompt": "consent", "login_hint": "alice@acme.test",
    }


def test_provider_differences_are_data(token_server) -> None:
    ms = token_server.client("microsoft").authorize_url(redirect_uri="r", scopes=["Mail.Read"], state="s",
                                                        code_challenge="c" * 43)
    assert urlsplit(ms).path == "/authorize/oauth2/v2.0/authorize"
    assert _query(ms)["scope"] == "Mail.Read offline_access"
    assert "access_type" not in _query(ms)
    sf = token_server.client("salesforce").authorize_url(redirect_uri="r", scopes=["api", "refresh_token"],
                                                         state="s", code_challenge="c" * 43)
    assert _query(sf)["scope"] == "api refresh_token"
    hs = token_server.client("hubspot").authorize_url(redirect_uri="r", scopes=["crm.objects.contacts.read"],
                                                      state="s", code_challenge="c" * 43,
                                                      extra_params={"optional_scope": "x"})
    assert _query(hs)["optional_scope"] == "x"
    with pytest.raises(ValueError):
        token_server.client().authorize_url(redirect_uri="r", scopes=[], state="s", code_challenge="c" * 43,
                                            extra_params={"state": "evil"})


def test_exchange_with_pkce_then_refresh(token_server) -> None:
    client = token_server.client()
    verifier = make_verifier()
    code = _consent(token_server, client, verifier)
    before = datetime.now(UTC)
    tokens = client.exchange(code, redirect_uri="http://app.test/cb", code_verifier=verifier)
    assert tokens.access_token.startswith("at-") and tokens.refresh_token
    assert tokens.expires_at is not None
    assert before + timedelta(seconds=3590) < tokens.expires_at < datetime.now(UTC) + timedelta(seconds=3601)
    assert tokens.scope == "read write"
    assert tokens.extra == {"token_type": "Bearer"}
    refreshed = client.refresh(tokens.refresh_token)
    assert refreshed.access_token != tokens.access_token
    assert token_server.state.calls["token:refresh_token"] == 1


def test_wrong_verifier_is_invalid_grant(token_server) -> None:
    client = token_server.client()
    code = _consent(token_server, client, make_verifier())
    with pytest.raises(InvalidGrant) as info:
        client.exchange(code, redirect_uri="http://app.test/cb", code_verifier=make_verifier())
    assert info.value.error == "invalid_grant" and info.value.status == 400


def test_refresh_without_refresh_token_in_answer_and_without_expiry(token_server) -> None:
    token_server.state.issue_refresh = False
    token_server.state.expires_in = None
    token_server.state.extra_fields = {"instance_url": "https://acme.my.test", "id_token": "eyJ.secret.sig"}
    tokens = token_server.client("salesforce").refresh(token_server.seed_refresh_token())
    assert tokens.refresh_token is None and tokens.expires_at is None
    assert tokens.extra == {"token_type": "Bearer", "instance_url": "https://acme.my.test"}
    assert tokens.id_token == "eyJ.secret.sig"


def test_token_set_repr_never_shows_tokens() -> None:
    tokens = TokenSet(access_token="AT-SECRET", refresh_token="RT-SECRET", id_token="ID-SECRET",
                      expires_at=None, scope="x", extra={"instance_url": "https://i.test"})
    assert "SECRET" not in repr(tokens) and "SECRET" not in str(tokens)
    assert "instance_url" in repr(tokens)


def test_invalid_grant_is_its_own_error_and_masks_echoed_tokens(token_server) -> None:
    token_server.state.refresh_error = "invalid_grant"
    refresh_token = token_server.seed_refresh_token()
    with pytest.raises(InvalidGrant) as info:
        token_server.client().refresh(refresh_token)
    assert refresh_token not in str(info.value)
    assert refresh_token not in repr(info.value)
    assert "[redacted]" in str(info.value)


def test_hubspot_bad_refresh_token_is_invalid_grant() -> None:
    from tokens.providers import profile_for

    assert "BAD_REFRESH_TOKEN" in profile_for("hubspot").dead_grant_errors


def test_other_errors_carry_code_and_description(token_server) -> None:
    token_server.state.refresh_error = "server_error"
    with pytest.raises(OAuthError) as info:
        token_server.client().refresh(token_server.seed_refresh_token())
    assert not isinstance(info.value, InvalidGrant)
    assert info.value.error == "server_error" and info.value.description == "try later"
    assert info.value.status == 500
    assert "HTTP 500 server_error: try later" in str(info.value)


def test_non_json_error_body_gives_status_and_first_200_chars(token_server) -> None:
    token_server.state.refresh_error = "html"
    with pytest.raises(OAuthError) as info:
        token_server.client().refresh(token_server.seed_refresh_token())
    message = str(info.value)
    assert "HTTP 502" in message and "non-JSON" in message and "<html><body>upstream exploded" in message
    assert len(message) < 320


def test_client_secret_never_in_errors(token_server) -> None:
    provider = token_server.provider()
    provider.client_secret = "wrong-secret-value"
    with pytest.raises(OAuthError) as info:
        OAuthClient(provider, None, 5).refresh("rt-x")
    assert info.value.error == "invalid_client"
    assert "wrong-secret-value" not in str(info.value)
    assert "wrong-secret-value" not in repr(provider)


def test_unreachable_endpoint_is_an_oauth_error_without_the_token(token_server) -> None:
    provider = token_server.provider("hubspot")
    provider.revoke_url = "http://127.0.0.1:9/refresh-tokens/"  # nothing listens on port 9
    with pytest.raises(OAuthError) as info:
        OAuthClient(provider, None, 2).revoke("rt-SECRETVALUE")
    assert "unreachable" in str(info.value)
    assert "SECRETVALUE" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_revoke_styles(token_server) -> None:
    google = token_server.seed_refresh_token()
    token_server.client("google").revoke(google)
    hubspot = token_server.seed_refresh_token()
    token_server.client("hubspot").revoke(hubspot)
    assert token_server.state.revoked == [google, hubspot]
    microsoft = token_server.client("microsoft")
    assert not microsoft.can_revoke
    microsoft.revoke("whatever")  # no endpoint: a no-op
    assert token_server.state.calls["revoke"] == 2


def test_revoke_error_is_reported(token_server) -> None:
    token_server.state.revoke_error = "server_error"
    with pytest.raises(OAuthError) as info:
        token_server.client().revoke("rt-abc")
    assert info.value.status == 503


def test_environment_cannot_redirect_or_loosen_tls(tls_server, tls_files, monkeypatch) -> None:
    refresh_token = tls_server.seed_refresh_token()
    # a dead proxy and a CA bundle from the environment are ignored (trust_env is off)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files.ca_path)
    monkeypatch.setenv("CURL_CA_BUNDLE", tls_files.ca_path)
    with pytest.raises(OAuthError) as info:
        tls_server.client(ca_bundle=None).refresh(refresh_token)  # system CAs do not know our CA
    assert "SSLError" in str(info.value)
    assert tls_server.client(ca_bundle=tls_files.ca_path).refresh(refresh_token).access_token
