"""Fresh access tokens for workers: one refresh per expiry across threads and processes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from models.failpoints import failpoint
from models.tables import Connection, Credential, utcnow
from tokens.audit import audit
from tokens.oauth import InvalidGrant, OAuthClient, OAuthError, TokenSet
from tokens.vault import DecryptError, Vault

log = logging.getLogger(__name__)

REAUTH_MESSAGE = "refresh token rejected; reconnect"
NO_REFRESH_MESSAGE = "no refresh token; reconnect"
LOCK_WAIT_SECONDS = 120.0  # past the longest legitimate hold: a refresh's HTTP calls under their 30 s timeouts
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout ends a wait


class TokenError(Exception):
    """A connection's access token cannot be had right now."""


class NoCredential(TokenError):
    """The connection has no stored credential (never connected, or disconnected)."""


class ReauthRequired(TokenError):
    """The grant is dead: the rep must consent again; the connection says so."""


class RefreshFailed(TokenError):
    """The provider could not refresh just now (network, 5xx, other errors): retry later."""

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


@dataclass(frozen=True)
class AccessToken:
    """A usable access token and the credential version it came from (pass it back as stale_version)."""

    token: str = field(repr=False)
    version: int
    expires_at: datetime | None = None


def get_access_token(
    sessions: sessionmaker[Session], connection_id: int, *, client_for: Callable[[str], OAuthClient],
    vault: Vault, min_ttl: int = 60, stale_version: int | None = None, now: datetime | None = None,
    lock_wait: float = LOCK_WAIT_SECONDS, reads: sessionmaker[Session] | None = None,
) -> AccessToken:
    """The stored token if fresh; else refresh under a row lock, re-checking first (double-checked).

    On PostgreSQL a caller waits at most `lock_wait` seconds for another's refresh (lock_timeout), then
    gets RefreshFailed: a holder that hangs (a frozen process, a DNS lookup no HTTP timeout covers) must
    not pin every worker thread that needs the grant. On SQLite the engine's 60 s busy timeout bounds the
    wait (its OperationalError, retried like any store error). `reads`: the sessions for the first look,
    when `sessions` are write sessions (SQLite's BEGIN IMMEDIATE would queue a fresh token's read behind
    every page being stored).
    """
    with (reads or sessions)() as session:
        credential = _credential(session, connection_id, lock=False)
        if _usable(credential, now or utcnow(), min_ttl, stale_version):
            return _access(credential, vault)
    return _refresh_locked(
        sessions, connection_id, client_for=client_for, vault=vault, min_ttl=min_ttl,
        stale_version=stale_version, now=now, lock_wait=lock_wait,
    )


def _refresh_locked(
    sessions: sessionmaker[Session], connection_id: int, *, client_for: Callable[[str], OAuthClient],
    vault: Vault, min_ttl: int, stale_version: int | None, now: datetime | None, lock_wait: float,
) -> AccessToken:
    """Lock the row (FOR UPDATE; SQLite's BEGIN IMMEDIATE), re-read, refresh only if still needed."""
    failure: TokenError | None = None
    result: AccessToken | None = None
    with sessions() as session, session.begin():
        credential = _locked_credential(session, connection_id, lock_wait)
        if _usable(credential, now or utcnow(), min_ttl, stale_version):
            return _access(credential, vault)  # someone refreshed while we waited for the lock
        connection = session.get(Connection, connection_id)
        if connection is None:
            raise NoCredential(f"connection {connection_id} does not exist")
        if connection.status == "reauth_required":
            failure = ReauthRequired(f"connection {connection_id} needs a new consent")
        elif credential.refresh_token is None:
            _mark_reauth(session, connection, NO_REFRESH_MESSAGE, error="no_refresh_token")
            failure = ReauthRequired(f"connection {connection_id} has no refresh token; reconnect")
        else:
            presented = vault.decrypt(credential.refresh_token)
            try:
                tokens = client_for(connection.provider).refresh(presented)
            except InvalidGrant as exc:
                _mark_reauth(session, connection, REAUTH_MESSAGE, error=exc.error)
                failure = ReauthRequired(f"connection {connection_id}: {REAUTH_MESSAGE}")
            except OAuthError as exc:
                audit(
                    session, org_id=connection.org_id, action="token.refresh_failed",
                    connection_id=connection_id, error=exc.error or "unavailable", status=exc.status,
                )
                failure = RefreshFailed(str(exc), error=exc.error, status=exc.status)
            else:
                failpoint("after_token_response", connection_id)  # a test hook (models/failpoints.py); inert
                result = _store(session, connection, credential, tokens, vault, presented=presented)
    if failure is not None:
        raise failure
    assert result is not None
    return result


def credential_of(session: Session, connection_id: int, *, lock: bool = False) -> Credential | None:
    """The grant credential a connection uses (locked for update when asked)."""
    query = (
        select(Credential)
        .join(Connection, Connection.credential_id == Credential.id)
        .where(Connection.id == connection_id)
    )
    if lock:
        query = query.with_for_update(of=Credential)
    return session.execute(query).scalar_one_or_none()


def _locked_credential(session: Session, connection_id: int, lock_wait: float) -> Credential:
    """The credential row, locked for this transaction; RefreshFailed if its holder keeps it past `lock_wait`."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.set_config("lock_timeout", f"{max(1, int(lock_wait * 1000))}ms", True)))
    try:
        return _credential(session, connection_id, lock=True)
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
    raise RefreshFailed(
        f"connection {connection_id}: another refresh of its grant held the lock for over {lock_wait:g} s; retry",
        error="lock_timeout",
    )


def _credential(session: Session, connection_id: int, *, lock: bool) -> Credential:
    """The connection's credential row (locked for update when asked), or NoCredential."""
    credential = credential_of(session, connection_id, lock=lock)
    if credential is None:
        raise NoCredential(f"connection {connection_id} has no credential")
    return credential


def _usable(credential: Credential, now: datetime, min_ttl: int, stale_version: int | None) -> bool:
    """Fresh for at least the margin (unknown expiry counts as fresh) and not declared stale.

    The margin is `min_ttl`, or half the token's lifetime when that is shorter than twice `min_ttl`: a
    provider whose tokens live less than `min_ttl` would otherwise have every caller refresh a token that
    was just saved (one call per caller, not one per expiry). The lifetime counts from the row's last
    write, the save (a key rotation since then only shortens it: the token is used a little longer).
    """
    if stale_version is not None and credential.version == stale_version:
        return False
    expires_at = credential.expires_at
    if expires_at is None:
        return True
    margin = min(float(min_ttl), (expires_at - credential.updated_at).total_seconds() / 2)
    return expires_at > now + timedelta(seconds=max(0.0, margin))


def _access(credential: Credential, vault: Vault) -> AccessToken:
    """Decrypt the stored access token."""
    return AccessToken(vault.decrypt(credential.access_token), credential.version, credential.expires_at)


def _store(
    session: Session, connection: Connection, credential: Credential, tokens: TokenSet, vault: Vault,
    *, presented: str,
) -> AccessToken:
    """Save a refresh's result (a rotated refresh token replaces the `presented` one), bump version, audit.

    An answer without a refresh token (Google) or with the same one again (HubSpot) keeps the stored one.
    """
    rotated_to = tokens.refresh_token if tokens.refresh_token != presented else None
    rotated = rotated_to is not None
    credential.access_token = vault.encrypt(tokens.access_token)
    if rotated_to is not None:
        credential.refresh_token = vault.encrypt(rotated_to)
    credential.expires_at = tokens.expires_at
    credential.version = credential.version + 1
    audit(
        session, org_id=connection.org_id, action="token.refresh", connection_id=connection.id,
        version=credential.version, rotated=rotated,
        expires_at=tokens.expires_at.isoformat() if tokens.expires_at else None,
    )
    log.info("refreshed the access token of connection %s (version %s)", connection.id, credential.version)
    return AccessToken(tokens.access_token, credential.version, tokens.expires_at)


def _mark_reauth(session: Session, connection: Connection, message: str, *, error: str | None) -> None:
    """Flag every connection of the dead grant for a new consent and audit why."""
    session.execute(
        update(Connection)
        .where(Connection.credential_id == connection.credential_id, Connection.status == "active")
        .values(status="reauth_required", last_error=message)
    )
    connection.status, connection.last_error = "reauth_required", message
    audit(
        session, org_id=connection.org_id, action="token.refresh_failed", connection_id=connection.id,
        error=error or "invalid_grant", reauth_required=True,
    )
    log.warning("connection %s needs a new consent: %s", connection.id, message)


@dataclass(frozen=True)
class RevokeOutcome:
    """What disconnecting did at the provider; the local credential is gone either way."""

    had_credential: bool
    revoked_remotely: bool
    error: str | None = None


def revoke_connection_tokens(
    session: Session, connection_id: int, client: OAuthClient, vault: Vault
) -> RevokeOutcome:
    """Detach the connection from its grant; the last connection to leave revokes the grant at the
    provider (refresh token, else access token) and deletes the credential.

    A provider error is reported in the outcome and does not keep the local copy. Flushes; the
    caller commits (with the rest of its disconnect).
    """
    credential = credential_of(session, connection_id, lock=True)
    if credential is None:
        return RevokeOutcome(had_credential=False, revoked_remotely=False)
    connection = session.get_one(Connection, connection_id)
    connection.credential_id = None
    session.flush()
    still_used = session.execute(
        select(Connection.id).where(Connection.credential_id == credential.id).limit(1)
    ).first()
    if still_used is not None:
        return RevokeOutcome(had_credential=True, revoked_remotely=False, error=None)
    error: str | None = None
    revoked = False
    try:
        ciphertext = credential.refresh_token or credential.access_token
        token = vault.decrypt(ciphertext)
        if client.can_revoke:
            client.revoke(token)
            revoked = True
    except (OAuthError, DecryptError) as exc:
        error = str(exc)
        log.warning("could not revoke connection %s at the provider: %s", connection_id, error)
    session.delete(credential)
    audit(
        session, org_id=connection.org_id, action="token.revoke",
        connection_id=connection_id, revoked_remotely=revoked, error=error,
    )
    session.flush()
    return RevokeOutcome(had_credential=True, revoked_remotely=revoked, error=error)
