"""The Microsoft identity platform's memory: app registrations, codes, grants, rotating refresh tokens.

Refresh tokens rotate: every refresh answer carries a new one. Knob `old_refresh_token_uses`: how many
more times a rotated-out refresh token is accepted. None (the default) is the platform's documented
behaviour ("doesn't revoke old refresh tokens when used to fetch new access tokens"); 1 allows one
grace use; 0 kills it at once (the strictest rotation a client must survive).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.microsoft_jwt import Signer, b64url

GRAPH = "https://graph.microsoft.com/"
GRAPH_SCOPES = frozenset({"Mail.ReadBasic", "Mail.Read", "Calendars.Read", "Contacts.Read", "User.Read"})
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
DEFAULT_CLIENT_ID = "6f1e2a57-0c1d-4b5e-9a43-5a9d0c2b7e10"
DEFAULT_CLIENT_SECRET = "sandbox~microsoft~secret"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


class AadError(Exception):
    """A token-endpoint refusal: HTTP status, OAuth error and the AADSTS code with its text."""

    def __init__(self, status: int, error: str, code: int, text: str) -> None:
        super().__init__(f"AADSTS{code}: {text}")
        self.status, self.error, self.code, self.text = status, error, code, text


@dataclass(slots=True)
class AppRegistration:
    """A confidential client; redirect_uris None accepts any http(s) URI (the product's is dynamic)."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] | None = None


@dataclass(slots=True)
class Code:
    client_id: str
    user: str
    scopes: tuple[str, ...]
    redirect_uri: str
    challenge: str
    nonce: str | None
    expires_at: float
    used: bool = False


@dataclass(slots=True)
class Grant:
    """One consent: its scopes, live refresh tokens (token -> remaining uses) and access tokens."""

    id: str
    client_id: str
    user: str
    scopes: tuple[str, ...]
    refresh: dict[str, int] = field(default_factory=dict)
    revoked: bool = False


@dataclass(slots=True, frozen=True)
class Access:
    """What an access token stands for."""

    grant_id: str
    user: str
    scopes: frozenset[str]
    expires_at: float


def split_scopes(requested: Sequence[str]) -> tuple[set[str], set[str], list[str]]:
    """(OIDC scopes, Graph scopes in short form, unknown scopes); `.default` stays as ".default"."""
    oidc: set[str] = set()
    graph: set[str] = set()
    unknown: list[str] = []
    for scope in requested:
        short = scope[len(GRAPH) :] if scope.lower().startswith(GRAPH) else scope
        if short in OIDC_SCOPES:
            oidc.add(short)
        elif short in GRAPH_SCOPES or short == ".default":
            graph.add(short)
        else:
            unknown.append(scope)
    return oidc, graph, unknown


def s256(verifier: str) -> str:
    """PKCE S256 challenge of a verifier."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def object_id(user: str) -> str:
    """A stable object id (oid) per user address."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, "sandbox-user:" + user.lower()))


class Identity:
    """Thread-safe identity state; `issuer_base` is the URL prefix before "/{tenant}/v2.0"."""

    def __init__(self, users: dict[str, str], *, seed: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.users = {u.lower(): name for u, name in users.items()}
        self.tenant_id = TENANT_ID
        self.signer = Signer(seed)
        self.apps = {DEFAULT_CLIENT_ID: AppRegistration(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)}
        self.codes: dict[str, Code] = {}
        self.grants: dict[str, Grant] = {}
        self.refresh_index: dict[str, str] = {}  # refresh token -> grant id
        self.access: dict[str, Access] = {}
        # knobs
        self.access_token_ttl = 3599
        self.code_ttl = 600
        self.old_refresh_token_uses: int | None = None
        self.require_pkce = True
        self.deny_consent = False

    def _aad(self, status: int, error: str, code: int, text: str) -> AadError:
        return AadError(status, error, code, text)

    def issue_code(
        self, *, client_id: str, user: str, scopes: Sequence[str], redirect_uri: str, challenge: str, nonce: str | None
    ) -> str:
        """An authorization code for this consent."""
        with self.lock:
            code = "1.A" + secrets.token_urlsafe(90)
            self.codes[code] = Code(
                client_id, user, tuple(scopes), redirect_uri, challenge, nonce, self.clock() + self.code_ttl
            )
            return code

    def redeem_code(
        self,
        *,
        client_id: str,
        code: str,
        redirect_uri: str | None,
        verifier: str | None,
        scope: Sequence[str],
        issuer_base: str,
    ) -> dict[str, Any]:
        """authorization_code grant (PKCE checked); raises AadError as the platform would answer."""
        with self.lock:
            auth = self.codes.get(code)
            if auth is None or auth.client_id != client_id:
                raise self._aad(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
            if auth.used:
                raise self._aad(
                    400,
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, "
                    "please retry with a new valid code or use an existing refresh token.",
                )
            if self.clock() > auth.expires_at:
                raise self._aad(
                    400,
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token has expired due to inactivity.",
                )
            if redirect_uri != auth.redirect_uri:
                raise self._aad(
                    400,
                    "invalid_grant",
                    500112,
                    "The reply address does not match the reply "
                    "address provided when requesting the authorization code.",
                )
            if auth.challenge and (not verifier or s256(verifier) != auth.challenge):
                raise self._aad(
                    400,
                    "invalid_grant",
                    50148,
                    "The code_verifier does not match the "
                    "code_challenge supplied in the authorization request for PKCE.",
                )
            auth.used = True
            grant = Grant(secrets.token_hex(8), client_id, auth.user, auth.scopes)
            self.grants[grant.id] = grant
            return self._tokens(grant, scope, issuer_base, auth.nonce)

    def redeem_refresh(self, *, client_id: str, token: str, scope: Sequence[str], issuer_base: str) -> dict[str, Any]:
        """refresh_token grant: a new access token and a NEW refresh token (rotation)."""
        with self.lock:
            grant = self.grants.get(self.refresh_index.get(token, ""))
            if grant is None:
                raise self._aad(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
            if grant.revoked:
                raise self._aad(
                    400,
                    "invalid_grant",
                    50173,
                    "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
                )
            if grant.client_id != client_id:
                raise self._aad(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
            remaining = grant.refresh[token]
            if remaining <= 0:
                raise self._aad(
                    400,
                    "invalid_grant",
                    70008,
                    "The refresh token has expired or was already used to obtain a new refresh token.",
                )
            grant.refresh[token] = remaining - 1
            return self._tokens(grant, scope, issuer_base, None)

    def _tokens(self, grant: Grant, scope: Sequence[str], issuer_base: str, nonce: str | None) -> dict[str, Any]:
        """The token response for `grant`, narrowed to the requested Graph scopes."""
        oidc, graph, unknown = split_scopes(scope)
        granted_oidc, granted_graph, _ = split_scopes(grant.scopes)
        if unknown:
            raise self._aad(400, "invalid_scope", 70011, f"The provided value for scope {unknown[0]} is not valid.")
        graph.discard(".default")
        if not graph <= granted_graph:
            raise self._aad(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID '{grant.client_id}'.",
            )
        scopes = frozenset(graph or granted_graph)
        access = "EwB" + secrets.token_urlsafe(120)
        self.access[access] = Access(grant.id, grant.user, scopes, self.clock() + self.access_token_ttl)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(sorted(scopes) + sorted((oidc & granted_oidc) - {"offline_access"})),
            "expires_in": self.access_token_ttl,
            "ext_expires_in": self.access_token_ttl,
            "access_token": access,
        }
        if "offline_access" in granted_oidc:
            grace = self.old_refresh_token_uses
            if grace is not None:
                for old in [t for t, uses in grant.refresh.items() if uses > grace]:
                    grant.refresh[old] = grace  # rotated out: `grace` more uses at most
            fresh = "1.AXcA" + secrets.token_urlsafe(160)
            grant.refresh[fresh] = 1 << 30
            self.refresh_index[fresh] = grant.id
            body["refresh_token"] = fresh
        if "openid" in granted_oidc:
            body["id_token"] = self.id_token(grant, issuer_base, nonce, granted_oidc)
            body["client_info"] = b64url(json.dumps({"uid": object_id(grant.user), "utid": self.tenant_id}).encode())
        return body

    def id_token(self, grant: Grant, issuer_base: str, nonce: str | None, oidc: set[str]) -> str:
        """A signed v2.0 id_token: iss with this tenant, aud the client, nonce echoed."""
        now = int(self.clock())
        oid = object_id(grant.user)
        claims: dict[str, Any] = {
            "aud": grant.client_id,
            "iss": f"{issuer_base}/{self.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "oid": oid,
            "sub": b64url(hashlib.sha256(f"{grant.client_id}:{oid}".encode()).digest()),
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        if "profile" in oidc:
            claims["name"] = self.users.get(grant.user, grant.user)
            claims["preferred_username"] = grant.user
        if "email" in oidc:
            claims["email"] = grant.user
        return self.signer.sign(claims)

    def authenticate(self, token: str | None) -> Access | None:
        """The live access token's meaning, or None (unknown, expired, or its grant revoked)."""
        with self.lock:
            access = self.access.get(token or "")
            if access is None or self.clock() >= access.expires_at:
                return None
            grant = self.grants.get(access.grant_id)
            return None if grant is None or grant.revoked else access

    def peek_user(self, token: str | None) -> str | None:
        """Whose token this is, even if expired (for per-user counters and Retry-After checks)."""
        with self.lock:
            access = self.access.get(token or "")
            return access.user if access is not None else None

    def revoke_user(self, user: str) -> int:
        """The user revokes every consent (e.g. in My Apps); returns how many grants died."""
        with self.lock:
            doomed = [g for g in self.grants.values() if g.user == user.lower() and not g.revoked]
            for grant in doomed:
                grant.revoked = True
            return len(doomed)

    def expire_access_tokens(self) -> None:
        """Every issued access token expires now (the next API call answers 401)."""
        with self.lock:
            now = self.clock()
            self.access = {t: Access(a.grant_id, a.user, a.scopes, now) for t, a in self.access.items()}

    def client_for(self, client_id: str, secret: str | None) -> AppRegistration:
        """The app registration, after checking its secret."""
        app = self.apps.get(client_id)
        if app is None:
            raise self._aad(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        if secret != app.client_secret:
            raise self._aad(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret "
                "being sent in the request is the client secret value, not the client secret ID.",
            )
        return app


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """client_secret_basic credentials from an Authorization header, if that is how they came."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip()).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    cid, _, secret = raw.partition(":")
    return cid, secret
