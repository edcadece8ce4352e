"""Salesforce's OAuth endpoints over HTTP: authorize (code + PKCE S256, auto-approve), token, revoke, identity.

Only the web-server flow (and refresh) exists here: any other grant type is unsupported_grant_type.
"""

from __future__ import annotations

import base64
import html
import re
import urllib.parse
from typing import Any

from sandbox.http import Request, Response, add_query, json_response, redirect, text_response
from sandbox.salesforce_auth import IDENTITY_SCOPES, KNOWN_SCOPES, OAuthError, Session
from sandbox.salesforce_data import ORG_ID
from sandbox.salesforce_state import SalesforceState

_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_NO_STORE = (("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private"), ("Pragma", "no-cache"))
DEFAULT_SCOPES = ("api", "refresh_token")


def oauth_error(status: int, error: str, description: str) -> Response:
    """`{"error": ..., "error_description": ...}` as the token, revoke and identity endpoints answer."""
    return json_response({"error": error, "error_description": description}, status, _NO_STORE)


def _error_page(error: str, detail: str) -> Response:
    """What the login page shows when it cannot safely redirect back (bad client or redirect URI)."""
    page = (
        "<!doctype html><html><head><title>Error</title></head><body><h1>error=" + html.escape(error) + "</h1>"
        f"<p>{html.escape(detail)}</p></body></html>"
    )
    return text_response(page, 400, "text/html; charset=utf-8")


def authorize(state: SalesforceState, req: Request) -> Response:
    """GET /services/oauth2/authorize: validate, sign in as the login_hint user, 302 back with a code."""
    client_id = req.arg("client_id") or ""
    if client_id not in state.auth.clients:
        return _error_page("invalid_client_id", "client identifier invalid")
    redirect_uri = req.arg("redirect_uri") or ""
    parts = urllib.parse.urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        return _error_page("redirect_uri_mismatch", "redirect_uri must match configuration")
    st = req.arg("state")

    def back(**params: str) -> Response:
        pairs = list(params.items()) + ([("state", st)] if st is not None else [])
        return redirect(add_query(redirect_uri, pairs))

    if req.arg("response_type") != "code":
        return back(error="unsupported_response_type", error_description="response type not supported")
    scopes = tuple(dict.fromkeys((req.arg("scope") or "").split() or DEFAULT_SCOPES))
    if any(s not in KNOWN_SCOPES for s in scopes):
        return back(error="invalid_scope", error_description="the requested scope is not allowed")
    challenge, method = req.arg("code_challenge") or "", req.arg("code_challenge_method") or "S256"
    if method != "S256" or not _CHALLENGE.match(challenge):
        return back(error="invalid_request", error_description="missing or invalid code_challenge (S256 required)")
    users = state.users_by_email()
    hint = (req.arg("login_hint") or "").strip().lower()
    user_id = users.get(hint) if hint else next(iter(users.values()), None)
    if user_id is None or state.deny_consent:
        return back(error="access_denied", error_description="end-user denied authorization")
    return back(code=state.auth.issue_code(client_id, user_id, scopes, redirect_uri, challenge))


def _client_credentials(req: Request, form: dict[str, list[str]]) -> tuple[str, str | None]:
    """HTTP Basic wins over the form body, as RFC 6749 allows either."""
    auth = req.header("authorization") or ""
    if auth.lower().startswith("basic "):
        try:
            raw = base64.b64decode(auth[6:].strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return "", None
        cid, _, secret = raw.partition(":")
        return urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(secret)
    secrets = form.get("client_secret")
    return (form.get("client_id") or [""])[0], secrets[0] if secrets else None


def grant_type_of(req: Request) -> str:
    return (req.form().get("grant_type") or [""])[0] if req.method == "POST" else ""


def token(state: SalesforceState, req: Request, instance_url: str) -> Response:
    """POST /services/oauth2/token: authorization_code (PKCE) and refresh_token grants."""
    if req.method != "POST":
        return oauth_error(400, "invalid_request", "must use HTTP POST")
    form = req.form()
    client_id, secret = _client_credentials(req, form)

    def arg(name: str) -> str | None:
        values = form.get(name)
        return values[0] if values else None

    grant_type = arg("grant_type") or ""
    try:
        if grant_type == "authorization_code":
            body = state.auth.exchange(
                code=arg("code") or "", client_id=client_id, secret=secret, redirect_uri=arg("redirect_uri"),
                verifier=arg("code_verifier"), instance_url=instance_url,
            )  # fmt: skip
        elif grant_type == "refresh_token":
            body = state.auth.refresh(
                token=arg("refresh_token") or "", client_id=client_id, secret=secret, instance_url=instance_url
            )
        else:
            return oauth_error(400, "unsupported_grant_type", "grant type not supported")
    except OAuthError as exc:
        return oauth_error(exc.status, exc.error, exc.description)
    return json_response(body, 200, _NO_STORE)


def revoke(state: SalesforceState, req: Request) -> Response:
    """POST /services/oauth2/revoke (token=…): 200, or 400 invalid_token for a dead or unknown token."""
    value = req.arg("token") or ((req.form().get("token") or [""])[0] if req.method == "POST" else "")
    if not value or not state.auth.revoke(value):
        return oauth_error(400, "invalid_token", "invalid token")
    return Response(200, list(_NO_STORE), b"")


def _identity(state: SalesforceState, session: Session, instance_url: str) -> dict[str, Any]:
    user = state.record(session.user_id) or {}
    email = str(user.get("Email") or "")
    return {
        "sub": f"{instance_url}/id/{ORG_ID}/{session.user_id}",
        "user_id": session.user_id,
        "organization_id": ORG_ID,
        "preferred_username": user.get("Username"),
        "nickname": email.split("@")[0],
        "name": user.get("Name"),
        "email": email,
        "email_verified": True,
        "given_name": user.get("FirstName"),
        "family_name": user.get("LastName"),
        "zoneinfo": "America/Los_Angeles",
        "active": bool(user.get("IsActive", True)),
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "urls": {
            "rest": f"{instance_url}/services/data/v{{version}}/",
            "query": f"{instance_url}/services/data/v{{version}}/query/",
        },
    }


def identity(
    state: SalesforceState, req: Request, bearer: str | None, instance_url: str, user_id: str | None
) -> Response:
    """/services/oauth2/userinfo and the identity URL /id/{org}/{user}: need the id (or openid) scope."""
    session = state.auth.authenticate(bearer)
    if session is None:
        return oauth_error(401, "invalid_token", "Bad_OAuth_Token")
    if not IDENTITY_SCOPES & session.scopes:
        return oauth_error(403, "insufficient_scope", "the access token lacks the id, openid or profile scope")
    if user_id is not None and user_id != session.user_id:
        return oauth_error(403, "insufficient_scope", "Bad_Id")
    body = _identity(state, session, instance_url)
    if user_id is not None:  # the identity URL's own shape
        body |= {"id": body["sub"], "username": body["preferred_username"], "display_name": body["name"]}
    return json_response(body)
