"""Google's OAuth 2.0 endpoints: authorize (code + PKCE S256, auto-consent), token, revoke, userinfo."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import urllib.parse

from sandbox.google_errors import oauth_error
from sandbox.google_state import KNOWN_SCOPES, AccessToken, GoogleState, OAuthError
from sandbox.http import Request, Response, add_query, json_response, redirect, text_response

_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def _error_page(status: int, error: str, detail: str) -> Response:
    """What Google shows the user when it cannot safely redirect back (bad client or redirect URI)."""
    page = (
        "<!doctype html><html><head><title>Error</title></head><body>"
        f"<h1>Access blocked: Authorization Error</h1><p>Error {status}: {html.escape(error)}</p>"
        f"<p>{html.escape(detail)}</p></body></html>"
    )
    return text_response(page, status, "text/html; charset=utf-8")


def authorize(state: GoogleState, req: Request) -> Response:
    """GET /o/oauth2/v2/auth: validate, auto-approve as the login_hint user, 302 back with a code."""
    client_id = req.arg("client_id") or ""
    client = state.clients.get(client_id)
    if client is None:
        return _error_page(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = req.arg("redirect_uri") or ""
    if not redirect_uri:
        return _error_page(400, "invalid_request", "Missing required parameter: redirect_uri")
    parts = urllib.parse.urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        return _error_page(400, "invalid_request", f"Invalid parameter value for redirect_uri: {redirect_uri}")
    if client.redirect_uris is not None and redirect_uri not in client.redirect_uris:
        return _error_page(
            400,
            "redirect_uri_mismatch",
            f"You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 "
            f"policy. redirect_uri={redirect_uri}",
        )
    st = req.arg("state")

    def back(**params: str) -> Response:
        pairs = ([("state", st)] if st is not None else []) + list(params.items())
        return redirect(add_query(redirect_uri, pairs))

    if req.arg("response_type") != "code":
        return back(error="unsupported_response_type")
    scope = (req.arg("scope") or "").split()
    if not scope:
        return back(error="invalid_request", error_description="Missing required parameter: scope")
    unknown = [s for s in scope if s not in KNOWN_SCOPES]
    if unknown:
        return back(error="invalid_scope", error_description=f"Some requested scopes were invalid: {unknown}")
    challenge = req.arg("code_challenge") or ""
    method = req.arg("code_challenge_method") or ""
    if not challenge:
        return back(error="invalid_request", error_description="Missing required parameter: code_challenge")
    if method != "S256":
        return back(
            error="invalid_request",
            error_description="Invalid code_challenge_method: only S256 is allowed here",
        )
    if not _CHALLENGE.match(challenge):
        return back(error="invalid_request", error_description="Invalid code_challenge")
    mailbox = state.pick_login(req.arg("login_hint"))
    if mailbox is None or state.deny_consent:
        return back(error="access_denied")
    granted = [s for s in dict.fromkeys(scope) if s not in state.withheld_scopes]
    offline = (req.arg("access_type") or "online") == "offline"
    code = state.issue_code(
        client_id=client_id,
        mailbox=mailbox,
        scopes=granted,
        redirect_uri=redirect_uri,
        code_challenge=challenge,
        offline=offline,
    )
    return back(code=code, scope=" ".join(granted), authuser="0", prompt="consent")


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _client_credentials(req: Request, form: dict[str, list[str]]) -> tuple[str, str | None]:
    """client_secret_basic wins over client_secret_post, as RFC 6749 allows either."""
    auth = req.header("authorization") or ""
    if auth.lower().startswith("basic "):
        try:
            raw = base64.b64decode(auth[6:].strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return "", None
        cid, _, secret = raw.partition(":")
        return urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(secret)
    return _first(form, "client_id") or "", _first(form, "client_secret")


def grant_type_of(req: Request) -> str:
    return (req.form().get("grant_type") or [""])[0]


def token(state: GoogleState, req: Request) -> Response:
    """POST /token: authorization_code (PKCE) and refresh_token grants, Google's JSON errors."""
    if req.method != "POST":
        return oauth_error(405, "invalid_request", "Method not allowed")
    form = req.form()
    client_id, secret = _client_credentials(req, form)
    client = state.clients.get(client_id)
    if client is None:
        return oauth_error(401, "invalid_client", "The OAuth client was not found.")
    if secret != client.client_secret:
        return oauth_error(401, "invalid_client", "Unauthorized")
    grant_type = (form.get("grant_type") or [""])[0]

    def arg(name: str) -> str | None:
        return _first(form, name)

    try:
        if grant_type == "authorization_code":
            code = arg("code")
            if not code:
                return oauth_error(400, "invalid_request", "Missing required parameter: code")
            body = state.exchange_code(
                code=code,
                client_id=client_id,
                redirect_uri=arg("redirect_uri"),
                code_verifier=arg("code_verifier"),
            )
        elif grant_type == "refresh_token":
            refresh = arg("refresh_token")
            if not refresh:
                return oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
            body = state.refresh(refresh_token=refresh, client_id=client_id, scope=arg("scope"))
        else:
            return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    except OAuthError as exc:
        return oauth_error(exc.status, exc.error, exc.description)
    return json_response(
        body,
        200,
        (("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"), ("Pragma", "no-cache")),
    )


def revoke(state: GoogleState, req: Request) -> Response:
    """POST (or GET) /revoke?token=...: revokes the whole grant; unknown token -> 400 invalid_token."""
    value = req.arg("token")
    if not value and req.method == "POST":
        value = (req.form().get("token") or [""])[0]
    if not value or not state.revoke(value):
        return oauth_error(400, "invalid_token", "Token expired or revoked")
    return json_response({})


class UserinfoApi:
    """GET oauth2/v2/userinfo (and userinfo/v2/me): who the token belongs to, within its scopes."""

    kinds = frozenset({"userinfo"})
    EMAIL_SCOPES = frozenset({"email", "https://www.googleapis.com/auth/userinfo.email"})
    PROFILE_SCOPES = frozenset({"profile", "https://www.googleapis.com/auth/userinfo.profile"})

    def __init__(self, state: GoogleState) -> None:
        self.state = state

    @staticmethod
    def match(path: str) -> tuple[str, list[str]] | None:
        return ("userinfo", []) if path in ("/oauth2/v2/userinfo", "/userinfo/v2/me") else None

    def scopes(self, kind: str) -> frozenset[str]:
        return self.EMAIL_SCOPES | self.PROFILE_SCOPES | {"openid"}

    def handle(self, kind: str, params: list[str], req: Request, token: AccessToken) -> Response:
        user_id = str(int(hashlib.sha256(token.mailbox.encode()).hexdigest()[:15], 16))
        body: dict[str, object] = {"id": user_id}
        if token.scopes & self.EMAIL_SCOPES:
            body |= {"email": token.mailbox, "verified_email": True}
        if token.scopes & self.PROFILE_SCOPES:
            name = self.state.world.member_names.get(token.mailbox, "") if self.state.world is not None else ""
            body |= {"name": name, "picture": "https://lh3.googleusercontent.com/a/default-user=s96-c"}
        return json_response(body)
