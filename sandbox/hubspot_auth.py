"""HubSpot's OAuth v1 as data: app clients, authorization codes (PKCE optional), 30-minute access tokens.

HubSpot accepts PKCE (a `code_challenge` at authorize binds the code to a `code_verifier` at the token
endpoint) without requiring it of confidential apps, so a code issued without a challenge needs no
verifier. Refresh tokens do not rotate and live until deleted (DELETE /oauth/v1/refresh-tokens/{token}),
which, as at HubSpot, leaves the access tokens already issued alive until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.hubspot_data import PORTAL_ID, Owner, PortalData

DEFAULT_CLIENT_ID = "5a1b0c2d-hubspot-sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-hubspot-secret"
APP_ID = 777_001
HUB_DOMAIN = "acme-sandbox.hubspot.com"
EMAIL_CONTENT_SCOPE = "sales-email-read"
KNOWN_SCOPES = frozenset(
    {
        "oauth",
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.companies.read",
        "crm.objects.companies.write",
        "crm.objects.deals.read",
        "crm.objects.owners.read",
        "crm.objects.calls.read",
        "crm.objects.meetings.read",
        "crm.objects.emails.read",
        "crm.objects.notes.read",
        "crm.objects.tasks.read",
        "crm.schemas.contacts.read",
        EMAIL_CONTENT_SCOPE,
    }
)


class OAuthFailure(Exception):
    """What the token endpoint answers instead of tokens: HTTP status, HubSpot's status code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(slots=True)
class Client:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] | None = None  # None: any http(s) URI (the product's is per deployment)


@dataclass(slots=True)
class AuthCode:
    code: str
    client_id: str
    owner_id: int
    scopes: tuple[str, ...]
    redirect_uri: str
    challenge: str | None
    expires_at: float
    used: bool = False


@dataclass(slots=True)
class Grant:
    """One install by one user: the refresh token and what it may do."""

    refresh_token: str
    client_id: str
    owner_id: int
    scopes: tuple[str, ...]
    deleted: bool = False


@dataclass(slots=True)
class AccessToken:
    token: str
    grant: Grant
    expires_at: float


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class HubspotAuth:
    """Clients, codes, grants and access tokens; callers hold the state's lock."""

    def __init__(self, portal: PortalData, clock: Callable[[], float] = time.time) -> None:
        self.portal = portal
        self.clock = clock
        self.access_token_ttl = 1800
        self.code_ttl = 600
        self.clients = {DEFAULT_CLIENT_ID: Client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)}
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}  # refresh token -> grant
        self.tokens: dict[str, AccessToken] = {}

    def pick_user(self, hint: str | None, default: str | None) -> Owner | None:
        """The portal user who signs in: the hinted one (must be a live owner), else the default or the first."""
        wanted = hint or default
        if wanted:
            return self.portal.owner_by_email(wanted)
        return next((o for o in self.portal.owners.values() if not o.archived), None)

    def issue_code(
        self, client_id: str, owner: Owner, scopes: tuple[str, ...], redirect_uri: str, challenge: str | None
    ) -> str:
        code = str(uuid.uuid4())
        self.codes[code] = AuthCode(
            code, client_id, owner.id, scopes, redirect_uri, challenge, self.clock() + self.code_ttl
        )
        return code

    def _client(self, client_id: str, secret: str | None) -> Client:
        client = self.clients.get(client_id)
        if client is None:
            raise OAuthFailure(400, "BAD_CLIENT_ID", "missing or unknown client id")
        if secret != client.client_secret:
            raise OAuthFailure(400, "BAD_CLIENT_SECRET", "missing or invalid client secret")
        return client

    def _tokens(self, grant: Grant) -> dict[str, Any]:
        access = AccessToken("C" + secrets.token_urlsafe(72), grant, self.clock() + self.access_token_ttl)
        self.tokens[access.token] = access
        return {
            "token_type": "bearer",
            "refresh_token": grant.refresh_token,
            "access_token": access.token,
            "expires_in": self.access_token_ttl,
            "hub_id": PORTAL_ID,
            "user_id": self.portal.owners[grant.owner_id].user_id,
            "scopes": list(grant.scopes),
        }

    def exchange(
        self, code: str, client_id: str, secret: str | None, redirect_uri: str | None, verifier: str | None
    ) -> dict[str, Any]:
        """authorization_code grant."""
        self._client(client_id, secret)
        auth = self.codes.get(code)
        if auth is None or auth.used or auth.client_id != client_id or self.clock() > auth.expires_at:
            raise OAuthFailure(400, "BAD_AUTH_CODE", "missing or unknown auth code")
        if redirect_uri != auth.redirect_uri:
            raise OAuthFailure(400, "BAD_REDIRECT_URI", "redirect_uri does not match the authorize request")
        if auth.challenge is not None and (not verifier or s256(verifier) != auth.challenge):
            raise OAuthFailure(400, "BAD_AUTH_CODE", "the code_verifier does not match the code_challenge")
        auth.used = True
        grant = Grant(str(uuid.uuid4()), client_id, auth.owner_id, auth.scopes)
        self.grants[grant.refresh_token] = grant
        return self._tokens(grant)

    def refresh(self, refresh_token: str, client_id: str, secret: str | None) -> dict[str, Any]:
        """refresh_token grant: a new access token, the same refresh token."""
        self._client(client_id, secret)
        grant = self.grants.get(refresh_token)
        if grant is None or grant.deleted or grant.client_id != client_id:
            raise OAuthFailure(400, "BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        return self._tokens(grant)

    def authenticate(self, token: str | None) -> tuple[AccessToken | None, bool]:
        """(live token or None, whether the token is known but expired)."""
        access = self.tokens.get(token or "")
        if access is None:
            return None, False
        if self.clock() >= access.expires_at:
            return None, True
        return access, False

    def owner_of(self, token: str | None) -> str | None:
        """The user a token was issued to, live or not (for counters)."""
        access = self.tokens.get(token or "")
        return self.portal.owners[access.grant.owner_id].email if access is not None else None

    def token_info(self, token: str) -> dict[str, Any] | None:
        access, _ = self.authenticate(token)
        if access is None:
            return None
        owner = self.portal.owners[access.grant.owner_id]
        return {
            "token": token,
            "user": owner.email,
            "hub_domain": HUB_DOMAIN,
            "scopes": list(access.grant.scopes),
            "hub_id": PORTAL_ID,
            "app_id": APP_ID,
            "expires_in": max(0, int(access.expires_at - self.clock())),
            "user_id": owner.user_id,
            "token_type": "access",
        }

    def refresh_info(self, refresh_token: str) -> dict[str, Any] | None:
        grant = self.grants.get(refresh_token)
        if grant is None or grant.deleted:
            return None
        owner = self.portal.owners[grant.owner_id]
        return {
            "token": refresh_token,
            "user": owner.email,
            "hub_domain": HUB_DOMAIN,
            "scopes": list(grant.scopes),
            "hub_id": PORTAL_ID,
            "client_id": grant.client_id,
            "user_id": owner.user_id,
            "token_type": "refresh",
        }

    def delete_refresh(self, refresh_token: str) -> bool:
        grant = self.grants.get(refresh_token)
        if grant is None or grant.deleted:
            return False
        grant.deleted = True
        return True

    def expire_access_tokens(self, user: str | None = None) -> int:
        now, count = self.clock(), 0
        for access in self.tokens.values():
            owner = self.portal.owners[access.grant.owner_id].email
            if (user is None or owner == user.lower()) and access.expires_at > now:
                access.expires_at = now
                count += 1
        return count

    def uninstall(self, user: str) -> int:
        """The user removed the app: every grant and access token of theirs dies now."""
        now, count = self.clock(), 0
        for grant in self.grants.values():
            if self.portal.owners[grant.owner_id].email == user.lower() and not grant.deleted:
                grant.deleted = True
                count += 1
        for access in self.tokens.values():
            if self.portal.owners[access.grant.owner_id].email == user.lower():
                access.expires_at = min(access.expires_at, now)
        return count
