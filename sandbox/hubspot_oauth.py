"""HubSpot's OAuth endpoints over HTTP: the install (authorize) page, /oauth/v1/token, token metadata, revoke."""

from __future__ import annotations

import html
import re
import urllib.parse

from sandbox.http import Request, Response, add_query, json_response, redirect, text_response
from sandbox.hubspot_auth import KNOWN_SCOPES, OAuthFailure
from sandbox.hubspot_errors import not_found, oauth_error
from sandbox.hubspot_state import HubspotState

_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def _error_page(status: int, message: str) -> Response:
    """What HubSpot shows the user when it cannot safely send them back (bad app or redirect URI)."""
    page = f"<!doctype html><title>Authorization failed</title><h1>Authorization failed</h1><p>{html.escape(message)}"
    return text_response(page, status, "text/html; charset=utf-8")


def authorize(state: HubspotState, req: Request) -> Response:
    """GET /oauth/authorize: validate, auto-approve as the hinted user, 302 back with a code."""
    client = state.auth.clients.get(req.arg("client_id") or "")
    if client is None:
        return _error_page(400, "This app could not be found (unknown client_id).")
    redirect_uri = req.arg("redirect_uri") or ""
    parts = urllib.parse.urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        return _error_page(400, "The redirect_uri is missing or invalid.")
    if client.redirect_uris is not None and redirect_uri not in client.redirect_uris:
        return _error_page(400, "The redirect_uri does not match the app's configured redirect URLs.")
    st = req.arg("state")

    def back(**params: str) -> Response:
        pairs = list(params.items()) + ([("state", st)] if st is not None else [])
        return redirect(add_query(redirect_uri, pairs))

    scopes = tuple(dict.fromkeys((req.arg("scope") or "").split()))
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if not scopes or unknown:
        return _error_page(400, f"Authorization failed because of invalid scopes: {unknown or 'none requested'}")
    challenge = req.arg("code_challenge")
    if challenge is not None and (
        (req.arg("code_challenge_method") or "S256") != "S256" or not _CHALLENGE.match(challenge)
    ):
        return back(error="invalid_request", error_description="code_challenge must be S256")
    with state.lock:
        owner = state.auth.pick_user(req.arg("login_hint"), state.default_login)
        if owner is None or state.deny_consent:
            return back(error="access_denied", error_description="The user did not install the app")
        code = state.auth.issue_code(client.client_id, owner, scopes, redirect_uri, challenge)
    return back(code=code)


def token(state: HubspotState, req: Request) -> Response:
    """POST /oauth/v1/token (form body): authorization_code and refresh_token grants."""
    if req.method != "POST":
        return oauth_error(405, "METHOD_NOT_ALLOWED", "use POST")
    form = {k: v[0] for k, v in req.form().items() if v}
    grant = form.get("grant_type", "")
    client_id, secret = form.get("client_id", ""), form.get("client_secret")
    try:
        with state.lock:
            if grant == "authorization_code":
                body = state.auth.exchange(
                    form.get("code", ""), client_id, secret, form.get("redirect_uri"), form.get("code_verifier")
                )
            elif grant == "refresh_token":
                body = state.auth.refresh(form.get("refresh_token", ""), client_id, secret)
            else:
                return oauth_error(400, "BAD_GRANT_TYPE", f"unsupported grant_type {grant!r}")
    except OAuthFailure as exc:
        return oauth_error(exc.status, exc.code, exc.message)
    return json_response(body, 200, (("Cache-Control", "no-store"),))


def access_token_info(state: HubspotState, req: Request, value: str) -> Response:
    """GET /oauth/v1/access-tokens/{token}: who the token belongs to (its `user` is their email)."""
    with state.lock:
        info = state.auth.token_info(value)
    return json_response(info) if info is not None else not_found("The access token is unknown or expired")


def refresh_token(state: HubspotState, req: Request, value: str) -> Response:
    """GET shows a refresh token's metadata; DELETE deletes it (204), unknown tokens are 404."""
    with state.lock:
        if req.method == "DELETE":
            return Response(204) if state.auth.delete_refresh(value) else not_found("Refresh token not found")
        info = state.auth.refresh_info(value)
    return json_response(info) if info is not None else not_found("Refresh token not found")
