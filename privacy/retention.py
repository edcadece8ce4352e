"""Data of a membership that ended more than the retention period ago is deleted (policy: one year at most)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select, update

from models.rls import org_scope, system_scope
from models.store import lock_org, publish_contacts
from models.tables import AuditEvent, Connection, Member, Org, Relationship
from privacy.periods import retention_days
from privacy.purge import purge_connection
from sync.runtime import Runtime
from tokens.access import revoke_connection_tokens


@dataclass(frozen=True)
class Swept:
    """One member's data removed by the sweep."""

    org: str
    member_id: int
    connections: int
    erased: int


def sweep_retention(rt: Runtime, today: date | None = None) -> list[Swept]:
    """Delete every expired membership's data; idempotent, resumable (one connection per transaction)."""
    today = today or rt.clock().date()
    with system_scope(), rt.sessions() as session:  # a read of every org's end dates
        expired = [
            (member_id, org.id, org.slug)
            for member_id, ended_on, org in session.execute(
                select(Member.id, Member.ended_on, Org)
                .join(Org, Org.id == Member.org_id)
                .where(Member.ended_on.is_not(None))
            )
            if ended_on is not None and today > ended_on + timedelta(days=retention_days(org.policy))
        ]
    return [_sweep_member(rt, member_id, org_id, slug) for member_id, org_id, slug in expired]


def _sweep_member(rt: Runtime, member_id: int, org_id: int, org_slug: str) -> Swept:
    """Revoke and purge each of the member's connections, then remove the member and their ties."""
    with org_scope(org_id):
        with rt.sessions() as session:
            connections = list(
                session.execute(
                    select(Connection.id, Connection.provider).where(Connection.member_id == member_id)
                ).all()
            )
        erased = 0
        for connection_id, provider in connections:
            with rt.writes.begin() as session:
                revoke_connection_tokens(session, connection_id, rt.oauth_client(provider), rt.vault)
                session.execute(update(Connection).where(Connection.id == connection_id).values(status="revoked"))
            erased += purge_connection(rt, connection_id).copies_and_records
            with rt.writes.begin() as session:
                session.delete(session.get_one(Connection, connection_id))
        with rt.writes.begin() as session:
            member = session.get_one(Member, member_id)
            org_id = member.org_id
            lock_org(session, org_id)
            tied = set(
                session.execute(select(Relationship.contact_id).where(Relationship.member_id == member_id)).scalars()
            )
            session.execute(
                update(AuditEvent)
                .where(AuditEvent.org_id == org_id, AuditEvent.target == member.email)
                .values(target="erased")
            )
            session.delete(member)  # cascades its interactions and relationships
            session.flush()
            publish_contacts(session, org_id, tied)
            session.add(
                AuditEvent(
                    org_id=org_id,
                    actor="retention-sweep",
                    action="privacy.retention_swept",
                    target=f"member:{member_id}",
                    details={"connections": len(connections), "erased": erased},
                )
            )
        return Swept(org_slug, member_id, len(connections), erased)
