"""The daily job that lets relationship strength decay with time, one bounded batch per transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from models.policy import StrengthPolicy
from models.rls import system_wide
from models.store import lock_org, publish_contacts
from models.tables import Org, Relationship
from sync.relationships import recompute_contacts
from sync.runtime import Runtime

BATCH = 1000
EVERY = timedelta(days=1)


def decay_org(rt: Runtime, org_id: int, now: datetime) -> int:
    """Recompute every relationship of the org at `now`; publish contacts whose ties changed."""
    last = 0
    published = 0
    while True:
        with rt.writes.begin() as session:
            org = session.get_one(Org, org_id)
            lock_org(session, org_id)
            contacts = list(
                session.execute(
                    select(Relationship.contact_id)
                    .where(Relationship.org_id == org_id, Relationship.contact_id > last)
                    .distinct()
                    .order_by(Relationship.contact_id)
                    .limit(BATCH)
                ).scalars()
            )
            if not contacts:
                session.execute(update(Org).where(Org.id == org_id).values(decayed_at=now))
                return published
            before = _strengths(session, contacts)
            recompute_contacts(session, org_id, set(contacts), now, StrengthPolicy.from_org_policy(org.policy))
            after = _strengths(session, contacts)
            published += publish_contacts(session, org_id, {c for c in contacts if before.get(c) != after.get(c)})
            last = contacts[-1]


def _strengths(session: Session, contacts: list[int]) -> dict[int, tuple[float, ...]]:
    """Each contact's tie strengths as the API renders them (6 decimals); the ids are one org's contacts."""
    found: dict[int, list[float]] = {}
    for contact_id, value in session.execute(
        select(Relationship.contact_id, Relationship.strength)
        .where(Relationship.contact_id.in_(contacts))  # by the contact index, not a walk of the org's
        .order_by(Relationship.contact_id, Relationship.member_id)
    ):
        found.setdefault(contact_id, []).append(round(value, 6))
    return {c: tuple(v) for c, v in found.items()}


@system_wide
def decay_due(rt: Runtime, now: datetime) -> int:
    """Run the decay for every org whose last run is a day old (the scheduler calls this each tick)."""
    with rt.sessions() as session:
        due = list(
            session.execute(select(Org.id).where(or_(Org.decayed_at.is_(None), Org.decayed_at < now - EVERY))).scalars()
        )
    for org_id in due:
        decay_org(rt, org_id, now)
    return len(due)
