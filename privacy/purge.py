"""Erase what one connection brought, or everything about one identity, and keep the network consistent."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.rls import org_of, org_scope
from models.tables import Connection, Org, Participant, PersonRecord, RecordKey, Rejected
from sync.contacts import ContactBook
from sync.identity import split_key
from sync.ingest import IngestStats, settle_after_purge, sweep_unseen, target_for
from sync.records import forget_records
from sync.runtime import Runtime


@dataclass(frozen=True)
class Purged:
    """What an erasure removed (for the audit log and the operator)."""

    copies_and_records: int
    contacts_changed: int


def purge_connection(rt: Runtime, connection_id: int) -> Purged:
    """Every copy and record the connection brought, gone; what only it evidenced, gone with it."""
    now = rt.clock()
    with rt.sessions() as session:
        org_id = org_of(session, "connection", connection_id)
    with org_scope(org_id or 0), rt.writes.begin() as session:
        connection = session.get_one(Connection, connection_id)
        org = session.get_one(Org, connection.org_id)
        target = target_for(session, org, connection_id=connection_id, stream="", generation=0, suppression_secret=None)
        stats = sweep_unseen(session, target, now, everything=True)
    return Purged(stats.deleted, len(stats.touched_contacts))


def purge_identity(rt: Runtime, org_id: int, key: str) -> Purged:
    """Everything an org holds about one identity key ("email:…" or "phone:+…")."""
    with org_scope(org_id):
        now = rt.clock()
        kind, value = split_key(key)
        with rt.writes.begin() as session:
            org = session.get_one(Org, org_id)
            target = target_for(session, org, connection_id=0, stream="", generation=0, suppression_secret=None)
            book = ContactBook(session, target.org, org_id)
            book.suspect((key,))
            records = _records_with(session, org_id, key, value if kind == "email" else None)
            removed = forget_records(session, records, book)
            activities: set[int] = set()
            if kind == "email":
                activities = set(
                    session.execute(
                        select(Participant.activity_id).where(Participant.org_id == org_id, Participant.email == value)
                    ).scalars()
                )
                session.execute(delete(Participant).where(Participant.org_id == org_id, Participant.email == value))
                session.execute(delete(Rejected).where(Rejected.org_id == org_id, Rejected.detail.contains(value)))
            stats = IngestStats()
            settle_after_purge(session, target, activities, book, now, stats)
        return Purged(removed + len(activities), len(stats.touched_contacts))


def _records_with(session: Session, org_id: int, key: str, email: str | None) -> list[int]:
    """Records that carry the key (or, for an address, list it: CRM users included)."""
    ids = set(
        session.execute(select(RecordKey.record_id).where(RecordKey.org_id == org_id, RecordKey.key == key)).scalars()
    )
    if email is not None:
        ids |= {
            rid
            for rid, emails in session.execute(
                select(PersonRecord.id, PersonRecord.emails).where(
                    PersonRecord.org_id == org_id, PersonRecord.kind == "user"
                )
            )
            if email in emails
        }
    return sorted(ids)


def orgs_of(session: Session) -> list[int]:
    """Every org (opt-out acts across all of them)."""
    return list(session.execute(select(Org.id).order_by(Org.id)).scalars())
