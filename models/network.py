"""The network's read side, shared by the HTTP API and the CLI: no query written twice."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.policy import StrengthPolicy, decayed_weight
from models.tables import Activity, Contact, Identity, Interaction, Member, Org, PersonRecord, Relationship, Sighting

JSONDict = dict[str, Any]


def iso(value: datetime) -> str:
    """RFC 3339 with a Z."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def org_by_slug(session: Session, slug: str) -> Org | None:
    """An org by its name."""
    return session.execute(select(Org).where(Org.slug == slug)).scalar_one_or_none()


def render_contacts(session: Session, org_id: int, contacts: Sequence[Contact]) -> list[JSONDict]:
    """Contacts in the DESIGN.md shape, with identities, merged ids and relationships, in 4 queries."""
    ids = [c.id for c in contacts]
    if not ids:
        return []
    emails: dict[int, list[str]] = defaultdict(list)
    phones: dict[int, list[str]] = defaultdict(list)
    refs: dict[str, int] = {}  # a record's id in its source -> the contact it belongs to
    for contact_id, kind, value in session.execute(
        select(Identity.contact_id, Identity.kind, Identity.value).where(
            Identity.org_id == org_id, Identity.contact_id.in_(ids)
        )
    ):
        if kind == "email":
            emails[contact_id].append(value)
        elif kind == "ref":
            refs[value] = contact_id
    for ref, numbers in session.execute(
        select(PersonRecord.ref, PersonRecord.phones).where(
            PersonRecord.org_id == org_id, PersonRecord.ref.in_(list(refs))
        )
    ):
        phones[refs[ref]].extend(numbers)
    merged: dict[int, list[str]] = defaultdict(list)
    for old_id, into in session.execute(
        select(Contact.id, Contact.merged_into).where(
            Contact.org_id == org_id, Contact.status == "merged", Contact.merged_into.in_(ids)
        )
    ):
        if into is not None:
            merged[into].append(str(old_id))
    ties: dict[int, list[JSONDict]] = defaultdict(list)
    for rel, member_email in session.execute(
        select(Relationship, Member.email)
        .join(Member, Member.id == Relationship.member_id)
        .where(Relationship.org_id == org_id, Relationship.contact_id.in_(ids))
        .order_by(Relationship.strength.desc(), Member.email)
    ):
        ties[rel.contact_id].append(
            {
                "member": member_email,
                "strength": round(rel.strength, 6),
                "interactions": {
                    "email_out": rel.email_out,
                    "email_in": rel.email_in,
                    "meeting": rel.meeting,
                    "call": rel.call,
                },
                "first_at": iso(rel.first_at),
                "last_at": iso(rel.last_at),
            }
        )
    return [
        {
            "id": str(c.id),
            "name": c.name,
            "emails": sorted(emails[c.id]),
            "phones": sorted(set(phones[c.id])),
            "company_domain": c.company_domain,
            "company": c.company,
            "merged_ids": sorted(merged[c.id], key=int),
            "relationships": ties[c.id],
        }
        for c in contacts
    ]


def iter_contacts(session: Session, org_id: int, batch: int = 1000) -> Iterator[JSONDict]:
    """Every current contact of the org, by id, streamed in batches."""
    last = 0
    while True:
        rows = (
            session.execute(
                select(Contact)
                .where(Contact.org_id == org_id, Contact.status == "active", Contact.id > last)
                .order_by(Contact.id)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from render_contacts(session, org_id, rows)
        last = rows[-1].id


def get_contact(session: Session, org_id: int, contact_id: int) -> JSONDict | None:
    """One contact; a merged id answers with the contact it was merged into."""
    contact = session.execute(
        select(Contact).where(Contact.org_id == org_id, Contact.id == contact_id)
    ).scalar_one_or_none()
    hops = 0
    while contact is not None and contact.status == "merged" and contact.merged_into and hops < 50:
        contact = session.execute(
            select(Contact).where(Contact.org_id == org_id, Contact.id == contact.merged_into)
        ).scalar_one_or_none()
        hops += 1
    if contact is None or contact.status != "active":
        return None
    return render_contacts(session, org_id, [contact])[0]


@dataclass(frozen=True)
class FeedPage:
    """One page of the change feed."""

    items: list[JSONDict]
    next: str
    has_more: bool


class BadCursor(ValueError):
    """The feed cursor is not one we issued."""


def parse_cursor(after: str | None) -> int:
    """The feed position after which to read (no cursor: from the beginning)."""
    if after is None or after == "":
        return 0
    if not after.isdigit() or len(after) > 18:
        raise BadCursor("cursor must be a value returned as `next`")
    return int(after)


def read_feed(session: Session, org_id: int, after: str | None, limit: int) -> FeedPage:
    """Changes after the cursor in commit order: each contact appears at its latest change."""
    position = parse_cursor(after)
    rows = (
        session.execute(
            select(Contact)
            .where(Contact.org_id == org_id, Contact.feed_seq > position)
            .order_by(Contact.feed_seq)
            .limit(limit + 1)
        )
        .scalars()
        .all()
    )
    page, has_more = rows[:limit], len(rows) > limit
    rendered = {c["id"]: c for c in render_contacts(session, org_id, [c for c in page if c.status == "active"])}
    items: list[JSONDict] = []
    for contact in page:
        if contact.status == "active":
            items.append({"change": "upserted", "contact": rendered[str(contact.id)]})
        elif contact.status == "merged":
            items.append({"change": "merged", "id": str(contact.id), "into": str(contact.merged_into)})
        else:
            items.append({"change": "deleted", "id": str(contact.id)})
    next_cursor = str(page[-1].feed_seq) if page else str(position)
    return FeedPage(items, next_cursor, has_more)


def explain_contact(session: Session, org: Org, contact: JSONDict, recent: int = 10) -> JSONDict:
    """The contact with, per relationship, the weights, decayed score and its most recent interactions."""
    policy = StrengthPolicy.from_org_policy(org.policy)
    keep_subjects = bool(org.policy.get("keep_subjects", False))
    contact_id = int(contact["id"])
    members = dict(session.execute(select(Member.email, Member.id).where(Member.org_id == org.id)).all())
    explained = []
    for tie in contact["relationships"]:
        rows = session.execute(
            select(Interaction.kind, Interaction.occurred_at, Activity.id, Activity.subject)
            .join(Identity, Identity.id == Interaction.identity_id)
            .join(Activity, Activity.id == Interaction.activity_id)
            .where(
                Interaction.org_id == org.id,
                Interaction.member_id == members[tie["member"]],
                Identity.contact_id == contact_id,
            )
            .distinct()  # an activity that reached several of the contact's identities is one interaction
            .order_by(Interaction.occurred_at.desc(), Activity.id.desc())
        ).all()
        computed_at = session.execute(
            select(Relationship.computed_at).where(
                Relationship.member_id == members[tie["member"]], Relationship.contact_id == contact_id
            )
        ).scalar_one()
        sources = _sources(session, [r[2] for r in rows[:recent]])
        explained.append(
            tie
            | {
                "weights": dict(policy.weights),
                "half_life_days": policy.half_life_days,
                "score": round(sum(decayed_weight(k, at, computed_at, policy) for k, at, _, _ in rows), 6),
                "computed_at": iso(computed_at),
                "recent": [
                    {"kind": kind, "at": iso(at), "sources": sources.get(aid, [])}
                    | ({"subject": subject} if keep_subjects and subject else {})
                    for kind, at, aid, subject in rows[:recent]
                ],
            }
        )
    return contact | {"relationships": explained}


def _sources(session: Session, activity_ids: list[int]) -> dict[int, list[str]]:
    """Which sources saw each activity."""
    found: dict[int, set[str]] = defaultdict(set)
    if activity_ids:
        for aid, source in session.execute(
            select(Sighting.activity_id, Sighting.source).where(Sighting.activity_id.in_(activity_ids))
        ):
            found[aid].add(source)
    return {aid: sorted(s) for aid, s in found.items()}


def intro_paths(session: Session, org_id: int, *, email: str | None = None, domain: str | None = None) -> JSONDict:
    """Members ranked by their strongest tie to the person (by address) or to anyone at the company."""
    query = select(Contact.id).where(Contact.org_id == org_id, Contact.status == "active")
    if email is not None:
        query = query.join(Identity, Identity.contact_id == Contact.id).where(
            Identity.org_id == org_id, Identity.kind == "email", Identity.value == email
        )
    else:
        query = query.where(Contact.company_domain == domain)
    contacts = session.execute(select(Contact).where(Contact.id.in_(query.limit(5000)))).scalars().all()
    best: dict[str, JSONDict] = {}
    for person in render_contacts(session, org_id, contacts):
        for tie in person["relationships"]:
            entry = best.setdefault(
                tie["member"],
                {
                    "member": tie["member"],
                    "strength": 0.0,
                    "via": None,
                    "contacts_known": 0,
                    "interactions": {"email_out": 0, "email_in": 0, "meeting": 0, "call": 0},
                    "last_at": tie["last_at"],
                },
            )
            entry["contacts_known"] += 1
            for kind, n in tie["interactions"].items():
                entry["interactions"][kind] += n
            entry["last_at"] = max(entry["last_at"], tie["last_at"])
            if tie["strength"] > entry["strength"]:
                entry["strength"] = tie["strength"]
                entry["via"] = {"id": person["id"], "name": person["name"], "emails": person["emails"]}
    ranked = sorted(best.values(), key=lambda e: (-e["strength"], e["member"]))
    return {"target": {"email": email} if email is not None else {"domain": domain}, "paths": ranked}
