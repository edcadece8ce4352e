"""A rep disconnects a source: tokens revoked at the provider, syncs stopped, its data purged (per policy)."""

from __future__ import annotations

from sqlalchemy import select

from models.rls import org_scope
from models.tables import AuditEvent, Connection, Org
from privacy.purge import Purged, purge_connection
from sync.connections import disconnect
from sync.runtime import Runtime


def disconnect_and_purge(rt: Runtime, org_id: int, connection_id: int, actor: str) -> tuple[Connection, Purged] | None:
    """None when the connection is not this org's. The org may keep the data (`purge_on_disconnect: false`)."""
    with org_scope(org_id):
        connection = disconnect(rt, org_id, connection_id, actor)
        if connection is None:
            return None
        with rt.sessions() as session:
            policy = session.execute(select(Org.policy).where(Org.id == org_id)).scalar_one()
        if not policy.get("purge_on_disconnect", True):
            return connection, Purged(0, 0)
        purged = purge_connection(rt, connection_id)
        with rt.writes.begin() as session:
            session.add(
                AuditEvent(
                    org_id=org_id,
                    actor=actor,
                    action="privacy.disconnect_purged",
                    target=f"connection:{connection_id}",
                    details={"erased": purged.copies_and_records, "contacts_changed": purged.contacts_changed},
                )
            )
        return connection, purged
