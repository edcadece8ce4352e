"""Salesforce's OAuth 2.0 side: codes with PKCE, opaque session tokens without expires_in, refresh, revoke.

Token answers carry instance_url, id (the identity URL), issued_at and signature, as Salesforce's do.
Access tokens die after `session_ttl` seconds (Salesforce's session timeout) and answer 401
INVALID_SESSION_ID; refresh tokens rotate (the old one dies) when `rotate_refresh_tokens` is on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CLIENT_ID = "3MVG9sandboxSalesforceConnectedApp"
DEFAULT_CLIENT_SECRET = "sandbox-salesforce-secret"
KNOWN_SCOPES = frozenset(
    {"api", "id", "refresh_token", "offline_access", "openid", "profile", "email", "address", "phone", "full",
     "web", "chatter_api"}
)  # fmt: skip
IDENTITY_SCOPES = frozenset({"id", "openid", "profile", "email", "full"})
API_SCOPES = frozenset({"api", "full"})
OFFLINE_SCOPES = frozenset({"refresh_token", "offline_access", "full"})


class OAuthError(Exception):
    """A token-endpoint refusal: HTTP status, OAuth error code and Salesforce's description."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


@dataclass(slots=True)
class AuthCode:
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    redirect_uri: str
    challenge: str
    expires_at: float
    used: bool = False


@dataclass(slots=True)
class Grant:
    """One consent: its refresh tokens and access tokens die together on revoke."""

    id: str
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass(slots=True)
class Session:
    token: str
    grant_id: str
    user_id: str
    scopes: frozenset[str]
    expires_at: float
    revoked: bool = False


def s256(verifier: str) -> str:
    """PKCE S256 challenge of a verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class SalesforceAuth:
    """Clients, codes, grants and sessions; thread-safe."""

    def __init__(self, org_id: str, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.org_id = org_id
        self.clients: dict[str, str] = {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.sessions: dict[str, Session] = {}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> grant id
        self.calls: Counter[str] = Counter()
        self.session_ttl = 7200
        self.code_ttl = 900
        self.rotate_refresh_tokens = False

    def issue_code(
        self, client_id: str, user_id: str, scopes: tuple[str, ...], redirect_uri: str, challenge: str
    ) -> str:
        with self.lock:
            code = "aPrx" + secrets.token_urlsafe(48)
            self.codes[code] = AuthCode(
                client_id, user_id, scopes, redirect_uri, challenge, self.clock() + self.code_ttl
            )
            return code

    def _session(self, grant: Grant) -> Session:
        token = f"{self.org_id[:15]}!AQ" + secrets.token_urlsafe(72)
        session = Session(token, grant.id, grant.user_id, frozenset(grant.scopes), self.clock() + self.session_ttl)
        self.sessions[token] = session
        grant.access_tokens.add(token)
        return session

    def _refresh(self, grant: Grant) -> str:
        token = "5Aep" + secrets.token_urlsafe(64)
        self.refresh_tokens[token] = grant.id
        grant.refresh_tokens.add(token)
        return token

    def _answer(self, grant: Grant, instance_url: str, secret: str) -> dict[str, Any]:
        session = self._session(grant)
        issued_at = str(int(self.clock() * 1000))
        identity = f"{instance_url}/id/{self.org_id}/{grant.user_id}"
        signature = hmac.new(secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        return {
            "access_token": session.token,
            "signature": base64.b64encode(signature).decode(),
            "scope": " ".join(grant.scopes),
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }

    def check_client(self, client_id: str, secret: str | None) -> None:
        if client_id not in self.clients:
            raise OAuthError(400, "invalid_client_id", "client identifier invalid")
        if secret != self.clients[client_id]:
            raise OAuthError(400, "invalid_client", "invalid client credentials")

    def exchange(
        self,
        *,
        code: str,
        client_id: str,
        secret: str | None,
        redirect_uri: str | None,
        verifier: str | None,
        instance_url: str,
    ) -> dict[str, Any]:
        """authorization_code grant."""
        with self.lock:
            self.calls["authorization_code"] += 1
            self.check_client(client_id, secret)
            auth = self.codes.get(code)
            if auth is None or auth.client_id != client_id or auth.used or self.clock() > auth.expires_at:
                raise OAuthError(400, "invalid_grant", "invalid authorization code")
            if redirect_uri != auth.redirect_uri:
                raise OAuthError(400, "redirect_uri_mismatch", "redirect_uri must match configuration")
            if not verifier or s256(verifier) != auth.challenge:
                raise OAuthError(400, "invalid_grant", "invalid code verifier")
            auth.used = True
            grant = Grant(secrets.token_hex(8), client_id, auth.user_id, auth.scopes)
            self.grants[grant.id] = grant
            body = self._answer(grant, instance_url, self.clients[client_id])
            if OFFLINE_SCOPES & set(grant.scopes):
                body["refresh_token"] = self._refresh(grant)
            return body

    def refresh(self, *, token: str, client_id: str, secret: str | None, instance_url: str) -> dict[str, Any]:
        """refresh_token grant; with rotation on, a new refresh token replaces the presented one."""
        with self.lock:
            self.calls["refresh_token"] += 1
            self.check_client(client_id, secret)
            grant = self.grants.get(self.refresh_tokens.get(token, ""))
            if grant is None or grant.revoked or grant.client_id != client_id:
                raise OAuthError(400, "invalid_grant", "expired access/refresh token")
            body = self._answer(grant, instance_url, self.clients[client_id])
            if self.rotate_refresh_tokens:
                self.refresh_tokens.pop(token, None)
                grant.refresh_tokens.discard(token)
                body["refresh_token"] = self._refresh(grant)
            return body

    def revoke(self, token: str) -> bool:
        """A refresh token revokes its grant; an access token only itself. False when unknown or dead."""
        with self.lock:
            self.calls["revoke"] += 1
            grant = self.grants.get(self.refresh_tokens.get(token, ""))
            if grant is not None and not grant.revoked:
                self._revoke_grant(grant)
                return True
            session = self.sessions.get(token)
            if session is None or session.revoked:
                return False
            session.revoked = True
            return True

    def _revoke_grant(self, grant: Grant) -> None:
        grant.revoked = True
        for access in grant.access_tokens:
            self.sessions[access].revoked = True
        for refresh in grant.refresh_tokens:
            self.refresh_tokens.pop(refresh, None)

    def authenticate(self, token: str | None) -> Session | None:
        """The live session behind a bearer token, or None (unknown, expired, revoked)."""
        if not token:
            return None
        with self.lock:
            session = self.sessions.get(token)
            if session is None or session.revoked or self.clock() >= session.expires_at:
                return None
            return session

    def peek_user(self, token: str | None) -> str | None:
        """The user a token names, live or not (for counters)."""
        session = self.sessions.get(token or "")
        return session.user_id if session is not None else None

    def expire_sessions(self, user_id: str | None = None) -> int:
        """End live sessions now (refresh tokens stay valid), as a session timeout would."""
        with self.lock:
            now = self.clock()
            hit = [
                s for s in self.sessions.values() if (user_id is None or s.user_id == user_id) and s.expires_at > now
            ]
            for session in hit:
                session.expires_at = now
            return len(hit)

    def revoke_user(self, user_id: str) -> int:
        """Revoke every grant of a user (the admin blocked the app); returns how many."""
        with self.lock:
            grants = [g for g in self.grants.values() if g.user_id == user_id and not g.revoked]
            for grant in grants:
                self._revoke_grant(grant)
            return len(grants)
