"""Re-aggregate only the (member, contact) ties a change touched."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from models.policy import StrengthPolicy, strength
from models.store import among, core, insert_rows, pairs_among
from models.tables import Identity, Interaction, Relationship
from sync.resolve import among_batches

IDENTITIES = core(Identity)
INTERACTIONS = core(Interaction)


def recompute_relationships(
    session: Session, org_id: int, pairs: set[tuple[int, int]], now: datetime, policy: StrengthPolicy
) -> set[int]:
    """Rebuild the relationships of touched (member, identity) pairs; return the contacts whose ties changed."""
    if not pairs:
        return set()
    contact_of: dict[int, int] = {}
    for batch in among_batches(session, sorted({i for _, i in pairs})):
        contact_of.update(
            session.execute(
                select(IDENTITIES.c.id, IDENTITIES.c.contact_id).where(among(session, IDENTITIES.c.id, batch))
            ).all()
        )
    ties = sorted({(m, contact_of[i]) for m, i in pairs if i in contact_of})
    changed: set[int] = set()
    for start in range(0, len(ties), 300):
        changed |= _rebuild(session, org_id, ties[start : start + 300], now, policy)
    return changed


def _rebuild(
    session: Session, org_id: int, ties: list[tuple[int, int]], now: datetime, policy: StrengthPolicy
) -> set[int]:
    """One bounded batch: read the ties' interactions, replace their relationship rows.

    An activity counts once per kind for a (member, contact) even when it reached several of the
    contact's identities (a logged CRM email names the contact's record and its address).
    """
    found: dict[tuple[int, int], list[tuple[str, datetime]]] = defaultdict(list)
    # the plain IN on contact_id lets the planner walk the contact index (SQLite scans for a row-value IN)
    contacts = sorted({c for _, c in ties})
    rows = session.execute(
        select(INTERACTIONS.c.member_id, IDENTITIES.c.contact_id, INTERACTIONS.c.kind, INTERACTIONS.c.occurred_at)
        .join(IDENTITIES, IDENTITIES.c.id == INTERACTIONS.c.identity_id)
        .where(
            among(session, IDENTITIES.c.contact_id, contacts),
            pairs_among(session, (INTERACTIONS.c.member_id, IDENTITIES.c.contact_id), ties),
        )
        .group_by(
            INTERACTIONS.c.member_id,
            IDENTITIES.c.contact_id,
            INTERACTIONS.c.activity_id,
            INTERACTIONS.c.kind,
            INTERACTIONS.c.occurred_at,
        )
    )
    for member_id, contact_id, kind, occurred_at in rows:
        found[(member_id, contact_id)].append((kind, occurred_at))
    stale = cast(Table, Relationship.__table__)  # Core: no ORM session sync to evaluate for these rows
    session.execute(
        delete(stale).where(
            among(session, stale.c.contact_id, contacts),
            pairs_among(session, (stale.c.member_id, stale.c.contact_id), ties),
        )
    )
    fresh = []
    for (member_id, contact_id), items in found.items():
        counts = {"email_out": 0, "email_in": 0, "meeting": 0, "call": 0}
        for kind, _ in items:
            counts[kind] += 1
        fresh.append(
            {
                "member_id": member_id,
                "contact_id": contact_id,
                "org_id": org_id,
                **counts,
                "first_at": min(at for _, at in items),
                "last_at": max(at for _, at in items),
                "strength": strength(items, now, policy),
                "computed_at": now,
            }
        )
    if fresh:
        insert_rows(session, Relationship, fresh)
    return {c for _, c in ties}


def recompute_contacts(
    session: Session, org_id: int, contact_ids: set[int], now: datetime, policy: StrengthPolicy
) -> set[int]:
    """Rebuild every tie of contacts whose identities moved (merge, split, retirement)."""
    if not contact_ids:
        return set()
    pairs: set[tuple[int, int]] = set()
    for batch in among_batches(session, sorted(contact_ids)):
        # the ids are this org's contacts; an org_id term would lure SQLite onto the org index (a scan of the org)
        stale = cast(Table, Relationship.__table__)  # Core: no ORM session sync to evaluate for these rows
        session.execute(delete(stale).where(among(session, stale.c.contact_id, batch)))
        pairs.update(
            (m, i)
            for m, i in session.execute(
                select(INTERACTIONS.c.member_id, INTERACTIONS.c.identity_id)
                .join(IDENTITIES, IDENTITIES.c.id == INTERACTIONS.c.identity_id)
                .where(among(session, IDENTITIES.c.contact_id, batch))
                .distinct()
            )
        )
    return recompute_relationships(session, org_id, pairs, now, policy) | contact_ids
