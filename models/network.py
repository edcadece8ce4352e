"""The network's read side, shared by the HTTP API and the CLI: no query written twice."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.tables import Contact, Identity, Member, Org, PersonRecord, Relationship

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
