"""Turning a completed consent into a syncing connection (and a reconnect into a recovered one)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import select, update

from connectors.base import Endpoints, FetchContext
from connectors.registry import CONNECTORS, get_connector
from models.tables import AuditEvent, Connection, Member, Org, SyncState
from sync.runtime import Runtime
from tokens.access import revoke_connection_tokens
from tokens.consent import ConsentResult, save_credential
from tokens.oauth import TokenSet


def sources_of(provider: str, enabled: Collection[str] | None = None) -> list[str]:
    """The registered sources one provider's consent covers (of those the org enables, if it limits them)."""
    return [name for name, c in CONNECTORS.items() if c.provider == provider and (enabled is None or name in enabled)]


def enabled_sources(policy: Mapping[str, Any]) -> list[str] | None:
    """The org's allowlist of sources (`policy.sources`), or None for every registered source."""
    sources = policy.get("sources")
    return [str(s) for s in sources] if isinstance(sources, list) else None


def scopes_of(provider: str, enabled: Collection[str] | None = None) -> list[str]:
    """The union of the narrowest scopes the provider's (enabled) sources need: data minimization."""
    return sorted({scope for name in sources_of(provider, enabled) for scope in get_connector(name).scopes})


def activate(rt: Runtime, result: ConsentResult) -> list[Connection]:
    """Create (or reactivate) one connection per enabled source of the provider, with due sync states."""
    with rt.sessions() as session:
        policy = session.get_one(Org, result.org_id).policy
    connections = []
    for source in sources_of(result.provider, enabled_sources(policy)):
        account = _whoami(rt, source, result.tokens)
        connections.append(_upsert(rt, result, source, account))
    return connections


def _whoami(rt: Runtime, source: str, tokens: TokenSet) -> str:
    """The account address as the provider reports it (never the rep's say-so)."""
    connector = get_connector(source)
    provider = rt.settings.provider(connector.provider)
    extra = {k: str(v) for k, v in tokens.extra.items() if isinstance(v, str | int)}
    ctx = FetchContext(
        access_token=tokens.access_token,
        endpoints=Endpoints(
            extra.get("instance_url") or provider.api_url, rt.settings.ca_bundle or None, rt.settings.http_timeout
        ),
        account="",
        now=rt.clock(),
        extra=extra,
    )
    return connector.whoami(ctx)


def _upsert(rt: Runtime, result: ConsentResult, source: str, account: str) -> Connection:
    """One connection row per (member, source, account); a reconnect reuses it."""
    now = rt.clock()
    with rt.writes.begin() as session:
        connection = session.execute(
            select(Connection).where(
                Connection.org_id == result.org_id,
                Connection.member_id == result.member_id,
                Connection.source == source,
                Connection.account == account,
            )
        ).scalar_one_or_none()
        action = "connection.reconnected" if connection else "connection.connected"
        if connection is None:
            connection = Connection(
                org_id=result.org_id,
                member_id=result.member_id,
                source=source,
                provider=result.provider,
                account=account,
            )
            session.add(connection)
        purge_cancelled = connection.purge_due_at is not None
        connection.status = "active"
        connection.last_error = None
        connection.purge_due_at = None  # a reconnect within the grace keeps the data
        connection.scopes = result.tokens.scope or ""
        connection.extra = {k: v for k, v in result.tokens.extra.items() if k in ("instance_url", "id")}
        session.flush()
        save_credential(session, connection_id=connection.id, tokens=result.tokens, vault=rt.vault)
        for stream in get_connector(source).streams:
            state = session.execute(
                select(SyncState).where(SyncState.connection_id == connection.id, SyncState.stream == stream)
            ).scalar_one_or_none()
            if state is None:
                session.add(
                    SyncState(org_id=result.org_id, connection_id=connection.id, stream=stream, next_run_at=now)
                )
            elif not state.running:
                state.next_run_at = now
                state.failed = False
                state.attempts = 0
        member = session.get_one(Member, result.member_id)
        session.add(
            AuditEvent(
                org_id=result.org_id,
                actor=member.email,
                action=action,
                target=f"connection:{connection.id}",
                details={"source": source, "account": account} | ({"purge_cancelled": True} if purge_cancelled else {}),
            )
        )
    return connection


def disconnect(rt: Runtime, org_id: int, connection_id: int, actor: str) -> Connection | None:
    """Revoke the tokens at the provider, stop the connection's syncs; None if not this org's connection."""
    with rt.writes.begin() as session:
        connection = session.execute(
            select(Connection).where(Connection.id == connection_id, Connection.org_id == org_id).with_for_update()
        ).scalar_one_or_none()
        if connection is None:
            return None
        outcome = revoke_connection_tokens(session, connection.id, rt.oauth_client(connection.provider), rt.vault)
        connection.status = "revoked"
        connection.last_error = None
        session.execute(
            update(SyncState)
            .where(SyncState.connection_id == connection.id)
            .values(running=False, lease_owner=None, lease_until=None, next_run_at=None)
        )
        session.add(
            AuditEvent(
                org_id=org_id,
                actor=actor,
                action="connection.disconnected",
                target=f"connection:{connection.id}",
                details={"source": connection.source, "revoked_at_provider": outcome.revoked_remotely},
            )
        )
    return connection
