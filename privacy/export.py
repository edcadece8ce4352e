"""Subject access: everything held about one person, across every org, as one JSON document.

The person is an identity (an email address or a phone number, normalized as opt-out does). Per org:
the contacts holding it (as the network API renders them), the person records that list it, the
activities it appears in (never a body; subjects only where the org keeps them), and, when the person
is a member, the membership and its connections. The export is audited by hash, never by address.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.network import iso, render_contacts
from models.rls import all_orgs
from models.suppression import suppressed, suppression_hash
from models.tables import (
    Activity,
    Connection,
    Contact,
    Identity,
    Member,
    Org,
    Participant,
    PersonRecord,
    RecordKey,
    Sighting,
)
from privacy.audit import record
from privacy.optout import identity_key
from sync.identity import split_key
from sync.runtime import Runtime

BATCH = 500
JSONDict = dict[str, Any]


def export_subject(rt: Runtime, raw: str, *, actor: str) -> JSONDict:
    """The export document; raises `privacy.optout.NotAnIdentity` for something that is neither."""
    key = identity_key(raw)
    secret = rt.suppression_secret()
    reference = suppression_hash(key, secret)[:16]
    kind, value = split_key(key)
    with rt.writes.begin() as session:
        all_orgs(session, actor=actor, reason="privacy.export")
        orgs = [
            entry
            for org in session.execute(select(Org).order_by(Org.slug)).scalars()
            if (entry := _org_export(session, org, kind, value))
        ]
        document = {
            "identity": {"kind": kind, "value": value},
            "suppressed": bool(suppressed(session, [key], secret)),
            "orgs": orgs,
        }
        record(
            session,
            org_id=None,
            actor=actor,
            action="privacy.export",
            target=f"identity:{reference}",
            orgs=len(orgs),
        )
    return document


def _org_export(session: Session, org: Org, kind: str, value: str) -> JSONDict | None:
    """What one org holds about the identity, or None when it holds nothing."""
    records = _records(session, org.id, f"{kind}:{value}")
    refs = sorted({r.ref for r in records} | {ref for r in records for ref in r.merged_from})
    contacts = _contacts(session, org.id, value if kind == "email" else None, refs)
    activities = _activities(session, org, value if kind == "email" else None, refs)
    membership = _membership(session, org.id, value) if kind == "email" else None
    if not (records or contacts or activities or membership):
        return None
    return {
        "org": org.slug,
        "contacts": render_contacts(session, org.id, contacts),
        "person_records": [
            {
                "source": r.source,
                "kind": r.kind,
                "name": r.name,
                "emails": r.emails,
                "phones": r.phones,
                "company": r.company,
            }
            for r in records
        ],
        "activities": activities,
        "membership": membership,
    }


def _records(session: Session, org_id: int, key: str) -> list[PersonRecord]:
    """The address-book and CRM entries that list the identity."""
    ids = select(RecordKey.record_id).where(RecordKey.org_id == org_id, RecordKey.key == key)
    return list(
        session.execute(
            select(PersonRecord)
            .where(PersonRecord.org_id == org_id, PersonRecord.id.in_(ids))
            .order_by(PersonRecord.id)
        ).scalars()
    )


def _contacts(session: Session, org_id: int, email: str | None, refs: list[str]) -> list[Contact]:
    """Current contacts holding the address, or a record that lists the identity."""
    wanted = []
    if email is not None:
        wanted.append((Identity.kind == "email") & (Identity.value == email))
    for batch in _chunks(refs):
        wanted.append((Identity.kind == "ref") & Identity.value.in_(batch))
    if not wanted:
        return []
    holders = select(Identity.contact_id).where(Identity.org_id == org_id, or_(*wanted))
    return list(
        session.execute(
            select(Contact)
            .where(Contact.org_id == org_id, Contact.status == "active", Contact.id.in_(holders))
            .order_by(Contact.id)
        ).scalars()
    )


def _activities(session: Session, org: Org, email: str | None, refs: list[str]) -> list[JSONDict]:
    """The activities the person took part in: kind, time, sources, their roles; subject if the org keeps it."""
    wanted = [Participant.email == email] if email is not None else []
    wanted += [Participant.person_ref.in_(batch) for batch in _chunks(refs)]
    if not wanted:
        return []
    roles: dict[int, set[str]] = defaultdict(set)
    for activity_id, role in session.execute(
        select(Participant.activity_id, Participant.role).where(Participant.org_id == org.id, or_(*wanted))
    ):
        roles[activity_id].add(role)
    keep_subjects = bool(org.policy.get("keep_subjects", False))
    found: list[JSONDict] = []
    for batch in _chunks(sorted(roles)):
        sources: dict[int, set[str]] = defaultdict(set)
        for activity_id, source in session.execute(
            select(Sighting.activity_id, Sighting.source).where(Sighting.activity_id.in_(batch))
        ):
            sources[activity_id].add(source)
        for activity in session.execute(select(Activity).where(Activity.id.in_(batch))).scalars():
            entry: JSONDict = {
                "kind": activity.kind,
                "at": iso(activity.occurred_at),
                "sources": sorted(sources[activity.id]),
                "roles": sorted(roles[activity.id]),
                "noise": activity.noise,
            }
            if keep_subjects and activity.subject:
                entry["subject"] = activity.subject
            found.append(entry)
    return sorted(found, key=lambda a: (a["at"], a["kind"]))


def _membership(session: Session, org_id: int, email: str) -> JSONDict | None:
    """The person as a member of the org: since when, until when, which accounts they connected."""
    member = session.execute(select(Member).where(Member.org_id == org_id, Member.email == email)).scalar_one_or_none()
    filters = [Connection.account == email] + ([Connection.member_id == member.id] if member else [])
    connections = (
        session.execute(select(Connection).where(Connection.org_id == org_id, or_(*filters)).order_by(Connection.id))
        .scalars()
        .all()
    )
    if member is None and not connections:
        return None
    return {
        "member": member is not None,
        "joined_at": iso(member.joined_at) if member else None,
        "ended_on": member.ended_on.isoformat() if member and member.ended_on else None,
        "connections": [
            {
                "source": c.source,
                "provider": c.provider,
                "account": c.account,
                "status": c.status,
                "connected_at": iso(c.created_at),
            }
            for c in connections
        ],
    }


def _chunks(values: Iterable[Any]) -> list[list[Any]]:
    """Lists of at most BATCH values (bind-parameter limits)."""
    items = list(values)
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
