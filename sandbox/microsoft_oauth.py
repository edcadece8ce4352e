"""The identity platform's v2.0 endpoints: OpenID discovery, keys, authorize (PKCE S256), token."""

from __future__ import annotations

import html
import re
import secrets
import urllib.parse
from datetime import UTC, datetime

from sandbox.http import Request, Response, add_query, json_response, redirect, text_response
from sandbox.microsoft_identity import AadError, Identity, basic_credentials, split_scopes

_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_NO_STORE = (("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"))


def issuer_base(req: Request, mount: str) -> str:
    """scheme://host:port/<mount>: what precedes "/{tenant}" in every identity URL."""
    return req.base_url + mount


def discovery(identity: Identity, base: str, tenant: str) -> Response:
    """GET /{tenant}/v2.0/.well-known/openid-configuration."""
    issuer_tenant = "{tenantid}" if tenant in ("common", "organizations", "consumers") else identity.tenant_id
    return json_response(
        {
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/graph/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }
    )


def keys(identity: Identity, base: str) -> Response:
    """GET /{tenant}/discovery/v2.0/keys."""
    return json_response(identity.signer.jwks(f"{base}/{identity.tenant_id}/v2.0"))


def _error_page(code: int, text: str) -> Response:
    """What the sign-in page shows when it cannot safely redirect back."""
    page = (
        f"<!doctype html><title>Sign in to your account</title><h1>Sorry, but we're having trouble "
        f"signing you in.</h1><p>AADSTS{code}: {html.escape(text)}</p>"
    )
    return text_response(page, 400, "text/html; charset=utf-8")


def authorize(identity: Identity, req: Request) -> Response:
    """GET /{tenant}/oauth2/v2.0/authorize: validate, auto-approve the login_hint user, 302 with a code."""
    app = identity.apps.get(req.arg("client_id") or "")
    if app is None:
        return _error_page(700016, f"Application with identifier '{req.arg('client_id')}' was not found.")
    redirect_uri = req.arg("redirect_uri") or ""
    parts = urllib.parse.urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        return _error_page(50011, "The redirect URI specified in the request does not match.")
    if app.redirect_uris is not None and redirect_uri not in app.redirect_uris:
        return _error_page(
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match "
            "the redirect URIs configured for the application.",
        )
    state = req.arg("state")

    def back(**params: str) -> Response:
        return redirect(
            add_query(redirect_uri, ([("state", state)] if state is not None else []) + list(params.items()))
        )

    def refuse(error: str, code: int, text: str) -> Response:
        return back(error=error, error_description=f"AADSTS{code}: {text}")

    if req.arg("response_type") != "code":
        return refuse("unsupported_response_type", 700054, "response_type 'code' is required here.")
    scopes = (req.arg("scope") or "").split()
    oidc, graph, unknown = split_scopes(scopes)
    if unknown or not scopes:
        return refuse(
            "invalid_scope", 70011, f"The provided value for the input parameter 'scope' is not valid: {unknown}"
        )
    challenge, method = req.arg("code_challenge") or "", req.arg("code_challenge_method") or ""
    if challenge or identity.require_pkce:
        if method != "S256":
            return refuse(
                "invalid_request",
                501491,
                "Invalid size of Code_Challenge parameter or method: code_challenge_method must be 'S256'.",
            )
        if not _CHALLENGE.match(challenge):
            return refuse("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
    user = (req.arg("login_hint") or "").strip().lower()
    if user not in identity.users:
        return refuse("access_denied", 50034, f"The user account {user or '(none)'} does not exist.")
    if identity.deny_consent:
        return refuse("access_denied", 65004, "User declined to consent to access the app.")
    code = identity.issue_code(
        client_id=app.client_id,
        user=user,
        scopes=sorted(oidc | graph),
        redirect_uri=redirect_uri,
        challenge=challenge,
        nonce=req.arg("nonce"),
    )
    return back(code=code, session_state=secrets.token_hex(16))


def aad_error(exc: AadError) -> Response:
    """The token endpoint's JSON error body, AADSTS code and trace ids included."""
    now = datetime.now(UTC)
    trace, correlation = secrets.token_hex(16), secrets.token_hex(16)
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": exc.error,
        "error_description": f"AADSTS{exc.code}: {exc.text} Trace ID: {trace} Correlation ID: {correlation} "
        f"Timestamp: {stamp}",
        "error_codes": [exc.code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={exc.code}",
    }
    return json_response(body, exc.status, _NO_STORE)


def token(identity: Identity, req: Request, base: str) -> Response:
    """POST /{tenant}/oauth2/v2.0/token: authorization_code (PKCE) and refresh_token (rotating)."""
    if req.method != "POST":
        return aad_error(AadError(400, "invalid_request", 900561, "The endpoint only accepts POST requests."))
    form = {k: v[0] for k, v in req.form().items() if v}
    creds = basic_credentials(req.header("authorization")) or (form.get("client_id", ""), form.get("client_secret"))
    scope = form.get("scope", "").split()
    try:
        app = identity.client_for(*creds)
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            body = identity.redeem_code(
                client_id=app.client_id,
                code=form.get("code", ""),
                redirect_uri=form.get("redirect_uri"),
                verifier=form.get("code_verifier"),
                scope=scope,
                issuer_base=base,
            )
        elif grant_type == "refresh_token":
            body = identity.redeem_refresh(
                client_id=app.client_id, token=form.get("refresh_token", ""), scope=scope, issuer_base=base
            )
        else:
            raise AadError(
                400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
            )
    except AadError as exc:
        return aad_error(exc)
    return json_response(body, 200, _NO_STORE)
