"""Google OAuth emulator over real HTTP: code + PKCE, refusals, refresh, revoke, expiry."""

from __future__ import annotations

import pytest
import requests
from googleapiclient.errors import HttpError
from sandbox_helpers import REDIRECT, authorize, connect, exchange, gmail, pkce_pair, redirect_params

from sandbox import Sandbox
from sandbox.google_state import SCOPE_METADATA, SCOPE_READONLY


def _form(sb: Sandbox, **data: str) -> requests.Response:
    s = sb.google_settings()
    base = {"client_id": s["GOOGLE_CLIENT_ID"], "client_secret": s["GOOGLE_CLIENT_SECRET"]}
    return requests.post(s["GOOGLE_TOKEN_URL"], data={**base, **data}, timeout=10)


def test_full_code_pkce_flow(sb: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    resp = authorize(sb, challenge=challenge, state="xyz")
    assert resp.headers["Location"].startswith(REDIRECT + "?")
    params = redirect_params(resp)
    assert params["state"] == "xyz"
    assert params["scope"] == SCOPE_METADATA
    assert params["code"].startswith("4/0A")
    tok = exchange(sb, params["code"], verifier)
    assert tok.status_code == 200
    body = tok.json()
    assert set(body) == {"access_token", "expires_in", "refresh_token", "scope", "token_type"}
    assert body["access_token"].startswith("ya29.")
    assert body["refresh_token"].startswith("1//")
    assert body["expires_in"] == 3599
    assert body["token_type"] == "Bearer"
    profile = gmail(sb, body["access_token"]).users().getProfile(userId="me").execute()
    assert profile["emailAddress"] == "alice@acme.test"
    assert sb.google.stats_snapshot()["calls"]["token:authorization_code"] == 1


def test_login_hint_picks_mailbox(sb: Sandbox) -> None:
    tok = connect(sb, login="BOB@acme.test")
    profile = gmail(sb, tok["access_token"]).users().getProfile(userId="me").execute()
    assert profile["emailAddress"] == "bob@acme.test"


def test_wrong_verifier_refused(sb: Sandbox) -> None:
    _, challenge = pkce_pair()
    params = redirect_params(authorize(sb, challenge=challenge))
    other_verifier, _ = pkce_pair()
    resp = exchange(sb, params["code"], other_verifier)
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_grant", "error_description": "Invalid code verifier."}
    missing = exchange(sb, params["code"], "")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"


def test_replayed_code_refused_and_revokes_first_tokens(sb: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    params = redirect_params(authorize(sb, challenge=challenge))
    first = exchange(sb, params["code"], verifier).json()
    again = exchange(sb, params["code"], verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    with pytest.raises(HttpError) as err:
        gmail(sb, first["access_token"]).users().getProfile(userId="me").execute()
    assert err.value.resp.status == 401
    refreshed = _form(sb, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert refreshed.status_code == 400
    assert refreshed.json() == {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}


def test_wrong_redirect_uri_refused(sb: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    params = redirect_params(authorize(sb, challenge=challenge))
    resp = exchange(sb, params["code"], verifier, redirect_uri=REDIRECT + "/other")
    assert resp.status_code == 400 and resp.json()["error"] == "redirect_uri_mismatch"


def test_authorize_refusals(sb: Sandbox) -> None:
    _, challenge = pkce_pair()
    plain = redirect_params(authorize(sb, challenge=challenge, method="plain"))
    assert plain["error"] == "invalid_request" and plain["state"] == "st-123"
    assert redirect_params(authorize(sb, challenge=None, method=None))["error"] == "invalid_request"
    assert redirect_params(authorize(sb, challenge=challenge, method=None))["error"] == "invalid_request"
    assert redirect_params(authorize(sb, challenge=challenge, login="nobody@x.test"))["error"] == "access_denied"
    bad_scope = redirect_params(authorize(sb, challenge=challenge, scopes="https://evil.test/all"))
    assert bad_scope["error"] == "invalid_scope"
    no_type = redirect_params(authorize(sb, challenge=challenge, extra={"response_type": "token"}))
    assert no_type["error"] == "unsupported_response_type"
    sb.google.deny_consent = True
    assert redirect_params(authorize(sb, challenge=challenge))["error"] == "access_denied"
    # no safe place to redirect to: an error page, not a redirect
    assert authorize(sb, challenge=challenge, redirect_uri="").status_code == 400
    assert authorize(sb, challenge=challenge, extra={"client_id": "unknown"}).status_code == 401


def test_code_expires(sb: Sandbox) -> None:
    sb.google.code_ttl = -1
    verifier, challenge = pkce_pair()
    params = redirect_params(authorize(sb, challenge=challenge))
    assert exchange(sb, params["code"], verifier).json()["error"] == "invalid_grant"


def test_client_authentication(sb: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    params = redirect_params(authorize(sb, challenge=challenge))
    bad = exchange(sb, params["code"], verifier, client_secret="wrong")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    s = sb.google_settings()
    basic = requests.post(
        s["GOOGLE_TOKEN_URL"],
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
        },
        auth=(s["GOOGLE_CLIENT_ID"], s["GOOGLE_CLIENT_SECRET"]),
        timeout=10,
    )
    assert basic.status_code == 200, basic.text
    assert _form(sb, grant_type="password", username="u", password="p").json()["error"] == ("unsupported_grant_type")


def test_online_access_gets_no_refresh_token(sb: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    params = redirect_params(authorize(sb, challenge=challenge, offline=False))
    assert "refresh_token" not in exchange(sb, params["code"], verifier).json()


def test_refresh_returns_new_access_token_only(sb: Sandbox) -> None:
    tok = connect(sb)
    resp = _form(sb, grant_type="refresh_token", refresh_token=tok["refresh_token"])
    body = resp.json()
    assert resp.status_code == 200
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["access_token"] != tok["access_token"]
    sb.google.return_refresh_token_on_refresh = True
    rotated = _form(sb, grant_type="refresh_token", refresh_token=tok["refresh_token"]).json()
    assert rotated["refresh_token"].startswith("1//")
    assert sb.google.stats_snapshot()["token_calls"]["refresh_token"] == 2


def test_revoke(sb: Sandbox) -> None:
    tok = connect(sb)
    url = sb.google_settings()["GOOGLE_REVOKE_URL"]
    ok = requests.post(url, params={"token": tok["refresh_token"]}, timeout=10)
    assert ok.status_code == 200 and ok.json() == {}
    again = requests.post(url, data={"token": tok["refresh_token"]}, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"
    with pytest.raises(HttpError) as err:
        gmail(sb, tok["access_token"]).users().getProfile(userId="me").execute()
    assert err.value.resp.status == 401
    assert _form(sb, grant_type="refresh_token", refresh_token=tok["refresh_token"]).status_code == 400


def test_revoke_all_tokens_of_mailbox(sb: Sandbox) -> None:
    tok = connect(sb)
    assert sb.google.revoke_mailbox_tokens("alice@acme.test") == 1
    assert _form(sb, grant_type="refresh_token", refresh_token=tok["refresh_token"]).status_code == 400


def test_expired_access_token_gets_401_then_client_refreshes(sb: Sandbox) -> None:
    sb.google.access_token_ttl = 0
    tok = connect(sb)
    with pytest.raises(HttpError) as err:
        gmail(sb, tok["access_token"]).users().getProfile(userId="me").execute()
    assert err.value.resp.status == 401
    assert 'error="invalid_token"' in err.value.resp["www-authenticate"]
    assert err.value.error_details[0]["reason"] == "authError"
    sb.google.access_token_ttl = 3599
    # google-auth refreshes on 401 by itself when it has a refresh token
    svc = gmail(sb, tok["access_token"], refresh_token=tok["refresh_token"])
    assert svc.users().getProfile(userId="me").execute()["emailAddress"] == "alice@acme.test"
    assert sb.google.stats_snapshot()["token_calls"]["refresh_token"] == 1


def test_scopes_enforced(sb: Sandbox) -> None:
    meta = gmail(sb, connect(sb)["access_token"])
    with pytest.raises(HttpError) as err:
        meta.users().messages().list(userId="me", q="after:2026/01/01").execute()
    assert err.value.resp.status == 403
    assert "Metadata scope does not support 'q' parameter" in str(err.value)
    some_id = meta.users().messages().list(userId="me", maxResults=1).execute()["messages"][0]["id"]
    for fmt in ("full", "raw"):
        with pytest.raises(HttpError) as err:
            meta.users().messages().get(userId="me", id=some_id, format=fmt).execute()
        assert err.value.resp.status == 403
    no_gmail = gmail(sb, connect(sb, scopes="openid email")["access_token"])
    with pytest.raises(HttpError) as err:
        no_gmail.users().getProfile(userId="me").execute()
    assert err.value.resp.status == 403
    assert err.value.error_details[0]["reason"] == "insufficientPermissions"
    full = gmail(sb, connect(sb, scopes=SCOPE_READONLY)["access_token"])
    got = full.users().messages().get(userId="me", id=some_id, format="full").execute()
    assert got["payload"]["parts"][0]["mimeType"] == "text/plain"
    assert "messages" in full.users().messages().list(userId="me", q="newer_than:3y").execute()


def test_withheld_scope_at_consent(sb: Sandbox) -> None:
    sb.google.withheld_scopes = {SCOPE_METADATA}
    tok = connect(sb, scopes=f"openid {SCOPE_METADATA}")
    assert tok["scope"] == "openid"
