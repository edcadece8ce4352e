"""A rep disconnects a source: tokens revoked at the provider, syncs stopped, its data purged (per policy).

The org's policy decides when the data goes: at once (the default), after `disconnect_grace_days`
(a reconnect before then keeps it), or never (`purge_on_disconnect: false`, the org keeps its records).
The retention sweep purges the disconnects whose grace has run out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.rls import org_scope, system_scope
from models.tables import AuditEvent, Connection, Org
from privacy.periods import disconnect_grace_days
from privacy.purge import Purged, purge_connection
from sync.connections import disconnect
from sync.runtime import Runtime


@dataclass(frozen=True)
class Disconnected:
    """A disconnect's outcome: what was erased now, and when the rest goes (None: erased, or kept by policy)."""

    connection: Connection
    purged: Purged
    purge_due_at: datetime | None


@dataclass(frozen=True)
class GracePurged:
    """One disconnected connection whose grace ran out, purged by the sweep."""

    org: str
    connection_id: int
    erased: int


def disconnect_and_purge(rt: Runtime, org_id: int, connection_id: int, actor: str) -> Disconnected | None:
    """None when the connection is not this org's."""
    with org_scope(org_id):
        connection = disconnect(rt, org_id, connection_id, actor)
        if connection is None:
            return None
        with rt.sessions() as session:
            policy = session.execute(select(Org.policy).where(Org.id == org_id)).scalar_one()
        if not policy.get("purge_on_disconnect", True):
            return Disconnected(connection, Purged(0, 0), None)
        grace = disconnect_grace_days(policy)
        if grace > 0:
            due = rt.clock() + timedelta(days=grace)
            with rt.writes.begin() as session:
                session.execute(update(Connection).where(Connection.id == connection_id).values(purge_due_at=due))
                _audit(session, org_id, actor, "privacy.disconnect_purge_scheduled", connection_id, grace_days=grace)
            return Disconnected(connection, Purged(0, 0), due)
        return Disconnected(connection, _purge(rt, org_id, connection_id, actor), None)


def purge_due_disconnects(rt: Runtime, now: datetime | None = None) -> list[GracePurged]:
    """Purge every disconnected connection whose grace has passed; idempotent, one connection per transaction."""
    now = now or rt.clock()
    with system_scope(), rt.sessions() as session:  # a read of every org's due purges
        due = session.execute(
            select(Connection.id, Connection.org_id, Org.slug)
            .join(Org, Org.id == Connection.org_id)
            .where(Connection.purge_due_at <= now, Connection.status == "revoked")
            .order_by(Connection.purge_due_at)
        ).all()
    done = []
    for connection_id, org_id, slug in due:
        with org_scope(org_id):
            purged = _purge(rt, org_id, connection_id, "retention-sweep")
        done.append(GracePurged(slug, connection_id, purged.copies_and_records))
    return done


def _purge(rt: Runtime, org_id: int, connection_id: int, actor: str) -> Purged:
    """Erase what only this connection brought, clear its due date, and record it (the caller scopes the org)."""
    purged = purge_connection(rt, connection_id)
    with rt.writes.begin() as session:
        session.execute(update(Connection).where(Connection.id == connection_id).values(purge_due_at=None))
        counts = {"erased": purged.copies_and_records, "contacts_changed": purged.contacts_changed}
        _audit(session, org_id, actor, "privacy.disconnect_purged", connection_id, **counts)
    return purged


def _audit(session: Session, org_id: int, actor: str, action: str, connection_id: int, **details: int) -> None:
    """One audit event about a connection's data."""
    session.add(
        AuditEvent(org_id=org_id, actor=actor, action=action, target=f"connection:{connection_id}", details=details)
    )
