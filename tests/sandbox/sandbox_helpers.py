"""Helpers that drive the sandbox with Google's own client libraries (requests for the browser hops)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from typing import Any

import google_auth_httplib2
import httplib2
import requests
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

from sandbox import Sandbox
from sandbox.google_state import SCOPE_METADATA

REDIRECT = "http://127.0.0.1:9/oauth/callback/google"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(
    sb: Sandbox,
    *,
    login: str = "alice@acme.test",
    scopes: str = SCOPE_METADATA,
    challenge: str | None = None,
    method: str | None = "S256",
    redirect_uri: str = REDIRECT,
    state: str = "st-123",
    offline: bool = True,
    verify: str | bool = True,
    extra: dict[str, str] | None = None,
) -> requests.Response:
    s = sb.google_settings()
    params = {
        "client_id": s["GOOGLE_CLIENT_ID"],
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scopes,
        "state": state,
        "login_hint": login,
    }
    if offline:
        params["access_type"] = "offline"
    if challenge is not None:
        params["code_challenge"] = challenge
    if method is not None:
        params["code_challenge_method"] = method
    params.update(extra or {})
    return requests.get(s["GOOGLE_AUTH_URL"], params=params, allow_redirects=False, timeout=10, verify=verify)


def redirect_params(resp: requests.Response) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    query = urllib.parse.urlsplit(resp.headers["Location"]).query
    return dict(urllib.parse.parse_qsl(query))


def exchange(sb: Sandbox, code: str, verifier: str, redirect_uri: str = REDIRECT, **extra: str) -> requests.Response:
    s = sb.google_settings()
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": redirect_uri,
        "client_id": s["GOOGLE_CLIENT_ID"],
        "client_secret": s["GOOGLE_CLIENT_SECRET"],
        **extra,
    }
    return requests.post(s["GOOGLE_TOKEN_URL"], data=data, timeout=10, verify=sb.ca_path or True)


def connect(sb: Sandbox, login: str = "alice@acme.test", scopes: str = SCOPE_METADATA) -> dict[str, Any]:
    """The whole authorization-code + PKCE flow over HTTP; returns the token response."""
    verifier, challenge = pkce_pair()
    params = redirect_params(authorize(sb, login=login, scopes=scopes, challenge=challenge, verify=sb.ca_path or True))
    resp = exchange(sb, params["code"], verifier)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def gmail(sb: Sandbox, token: str, refresh_token: str | None = None) -> Any:
    """A real googleapiclient Gmail service pointed at the sandbox."""
    s = sb.google_settings()
    creds = Credentials(  # type: ignore[no-untyped-call]
        token,
        refresh_token=refresh_token,
        token_uri=s["GOOGLE_TOKEN_URL"],
        client_id=s["GOOGLE_CLIENT_ID"],
        client_secret=s["GOOGLE_CLIENT_SECRET"],
    )
    # without a refresh token, let a 401 surface as HttpError instead of a RefreshError
    http = google_auth_httplib2.AuthorizedHttp(
        creds,
        http=httplib2.Http(ca_certs=sb.ca_path, timeout=10),
        refresh_status_codes=(401,) if refresh_token else (),
    )
    return build("gmail", "v1", http=http, static_discovery=True, client_options={"api_endpoint": s["GOOGLE_API_URL"]})
