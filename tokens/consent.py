"""The consent flow's store side: single-use signed state + PKCE, checked before any token call."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from models.rls import org_of, scoped
from models.tables import Connection, Credential, OAuthState, utcnow
from tokens.audit import audit
from tokens.oauth import OAuthClient, OAuthError, TokenSet
from tokens.pkce import make_verifier, s256_challenge
from tokens.signed import Expired, InvalidToken, sign, verify
from tokens.vault import DecryptError, Vault

STATE_PURPOSE = "oauth-state"
STATE_TTL_SECONDS = 600


class ConsentError(Exception):
    """A callback that must not yield tokens; `reason` is a stable code for the user-facing page."""

    reason: ClassVar[str] = "consent_failed"


class BadState(ConsentError):
    """The state is forged, tampered, unknown or not an OAuth state at all."""

    reason = "bad_state"


class ExpiredState(ConsentError):
    """The consent took longer than the state's lifetime."""

    reason = "expired_state"


class ReplayedState(ConsentError):
    """The state was already used once (a replayed or double-submitted callback)."""

    reason = "replayed_state"


class ProviderMismatch(ConsentError):
    """The state was issued for another provider than the callback's (RFC 9700 mix-up defence)."""

    reason = "provider_mismatch"


class ExchangeFailed(ConsentError):
    """The provider refused to trade the code for tokens."""

    reason = "exchange_failed"


@dataclass(frozen=True)
class ConsentResult:
    """Who consented to which provider, and the tokens it granted (repr hides them)."""

    org_id: int
    member_id: int
    provider: str
    tokens: TokenSet


def begin_consent(
    session: Session, *, org_id: int, member_id: int, provider: str, redirect_uri: str,
    scopes: Sequence[str], login_hint: str | None, vault: Vault, key: bytes, client: OAuthClient,
    now: datetime | None = None,
) -> str:
    """Store a single-use state (with its encrypted PKCE verifier), commit, return the authorize URL."""
    if client.provider.name != provider:
        raise ValueError("the client belongs to another provider")
    moment = now or utcnow()
    nonce = secrets.token_urlsafe(32)
    verifier = make_verifier()
    session.add(
        OAuthState(
            nonce=nonce, org_id=org_id, member_id=member_id, provider=provider,
            code_verifier=vault.encrypt(verifier),
            expires_at=moment + timedelta(seconds=STATE_TTL_SECONDS),
        )
    )
    session.commit()
    state = sign({"n": nonce, "p": provider}, STATE_PURPOSE, STATE_TTL_SECONDS, key, now=moment)
    return client.authorize_url(
        redirect_uri=redirect_uri, scopes=scopes, state=state, code_challenge=s256_challenge(verifier),
        login_hint=login_hint,
    )


def complete_consent(
    session: Session, *, provider: str, state: str, code: str, redirect_uri: str, vault: Vault, key: bytes,
    client: OAuthClient, now: datetime | None = None,
) -> ConsentResult:
    """Check the state (signature, purpose, expiry, provider, single use), commit its use, then exchange."""
    moment = now or utcnow()
    try:
        payload = verify(state, STATE_PURPOSE, key, now=moment)
    except Expired:
        raise ExpiredState("the consent took too long; start again") from None
    except InvalidToken:
        raise BadState("the consent state is not valid") from None
    nonce, state_provider = payload.get("n"), payload.get("p")
    if not isinstance(nonce, str) or not isinstance(state_provider, str):
        raise BadState("the consent state is not valid")
    if state_provider != provider or client.provider.name != provider:
        raise ProviderMismatch("the consent state belongs to another provider")
    org_id = org_of(session, "oauth_state", nonce)  # the consent's org, before any org is set
    if org_id is not None:
        scoped(session, org_id)
    row = _claim_state(session, nonce, provider, moment)
    try:
        verifier = vault.decrypt(row.code_verifier)
    except DecryptError:
        raise BadState("the consent state can no longer be read; start again") from None
    try:
        tokens = client.exchange(code, redirect_uri=redirect_uri, code_verifier=verifier)
    except OAuthError as exc:
        raise ExchangeFailed(f"the provider refused the authorization code ({exc.error or 'error'})") from exc
    return ConsentResult(org_id=row.org_id, member_id=row.member_id, provider=provider, tokens=tokens)


def _claim_state(session: Session, nonce: str, provider: str, moment: datetime) -> OAuthState:
    """Mark the state used in one conditional UPDATE and commit, so a replay finds it taken."""
    claim = update(OAuthState).where(
        OAuthState.nonce == nonce,
        OAuthState.used_at.is_(None),
        OAuthState.provider == provider,
        OAuthState.expires_at > moment,
    ).values(used_at=moment).execution_options(synchronize_session=False)
    claimed = cast("CursorResult[Any]", session.execute(claim)).rowcount == 1
    row = session.execute(
        select(OAuthState).where(OAuthState.nonce == nonce).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    session.commit()
    if claimed and row is not None:
        return row
    if row is None:
        raise BadState("the consent state is not valid")
    if row.provider != provider:
        raise ProviderMismatch("the consent state belongs to another provider")
    if row.used_at is not None:
        raise ReplayedState("this consent was already completed")
    raise ExpiredState("the consent took too long; start again")


def save_credential(session: Session, *, connection_id: int, tokens: TokenSet, vault: Vault) -> Credential:
    """Upsert the connection's encrypted tokens (keeping the old refresh token if none came), bump version.

    Flushes but does not commit: the caller commits it with the connection it belongs to.
    """
    connection = session.get_one(Connection, connection_id)
    credential = session.execute(
        select(Credential)
        .where(Credential.member_id == connection.member_id, Credential.provider == connection.provider)
        .with_for_update()
    ).scalar_one_or_none()
    if credential is None:
        credential = Credential(
            org_id=connection.org_id,
            member_id=connection.member_id,
            provider=connection.provider,
            access_token=vault.encrypt(tokens.access_token),
            refresh_token=vault.encrypt(tokens.refresh_token) if tokens.refresh_token else None,
            expires_at=tokens.expires_at,
            version=1,
        )
        session.add(credential)
    else:
        credential.access_token = vault.encrypt(tokens.access_token)
        if tokens.refresh_token:
            credential.refresh_token = vault.encrypt(tokens.refresh_token)
        credential.expires_at = tokens.expires_at
        credential.version = credential.version + 1
    session.flush()
    connection.credential_id = credential.id
    session.execute(  # new tokens bring every connection of the grant back
        update(Connection)
        .where(Connection.credential_id == credential.id, Connection.status == "reauth_required")
        .values(status="active", last_error=None)
    )
    if connection.status == "reauth_required":
        connection.status, connection.last_error = "active", None
    session.flush()
    audit(
        session, org_id=connection.org_id, action="token.store",
        connection_id=connection_id, version=credential.version,
        has_refresh_token=credential.refresh_token is not None,
    )
    session.flush()
    return credential


def purge_states(session: Session, *, now: datetime | None = None) -> int:
    """Delete used or expired consent states (housekeeping); returns how many. Caller commits."""
    moment = now or utcnow()
    result = session.execute(
        delete(OAuthState).where(or_(OAuthState.used_at.is_not(None), OAuthState.expires_at <= moment))
    )
    return cast("CursorResult[Any]", result).rowcount
