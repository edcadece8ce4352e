"""What re-deriving activities works from: their copies, participants, interactions and stored rows.

Read back from the store, except for the activities the page itself created: every copy and participant
of theirs was written by the page a moment ago (and none has interactions yet), so `Written` keeps those
rows and the read back is skipped for them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.store import among, core
from models.tables import Activity, Interaction, Participant, Sighting

ACTIVITIES = core(Activity)
INTERACTIONS = core(Interaction)
PARTICIPANTS = core(Participant)
SIGHTINGS = core(Sighting)

Copy = tuple[int, datetime, str | None, bool]  # activity id, occurred_at, noise, malformed From
Person = tuple[int, str, str, bool, str | None]  # activity id, role, email, declined, person_ref
Tie = tuple[int, int, int, str, datetime]  # activity id, member id, identity id, kind, occurred_at
Stored = tuple[int, str, datetime, str | None]  # activity id, kind, occurred_at, noise


@dataclass
class ActivityRows:
    """The rows of a batch of activities, as the store holds them."""

    copies: list[Copy] = field(default_factory=list)
    participants: list[Person] = field(default_factory=list)
    interactions: list[Tie] = field(default_factory=list)
    activities: list[Stored] = field(default_factory=list)


@dataclass
class Written:
    """The activities a page created, with all their copies and participants, as it wrote them."""

    rows: ActivityRows = field(default_factory=ActivityRows)
    ids: set[int] = field(default_factory=set)

    def forget(self, activity_ids: Collection[int]) -> None:
        """Copies of these activities were removed since they were written: read them back instead."""
        self.ids.difference_update(activity_ids)


def activity_rows(session: Session, ids: list[int], written: Written) -> ActivityRows:
    """The rows of these activities: the page's own from memory, the others from the store."""
    mine = written.ids.intersection(ids)
    rows = ActivityRows(
        copies=[r for r in written.rows.copies if r[0] in mine],
        participants=[r for r in written.rows.participants if r[0] in mine],
        activities=[r for r in written.rows.activities if r[0] in mine],
    )
    rest = [aid for aid in ids if aid not in mine]
    if not rest:
        return rows
    rows.copies += session.execute(
        select(SIGHTINGS.c.activity_id, SIGHTINGS.c.occurred_at, SIGHTINGS.c.noise, SIGHTINGS.c.malformed_from).where(
            among(session, SIGHTINGS.c.activity_id, rest)
        )
    ).all()
    rows.participants += session.execute(  # distinct: a mail to 200 colleagues has 200 copies of 200 rows
        select(
            PARTICIPANTS.c.activity_id,
            PARTICIPANTS.c.role,
            PARTICIPANTS.c.email,
            PARTICIPANTS.c.declined,
            PARTICIPANTS.c.person_ref,
        )
        .where(among(session, PARTICIPANTS.c.activity_id, rest))
        .distinct()
    ).all()
    rows.interactions += session.execute(
        select(
            INTERACTIONS.c.activity_id,
            INTERACTIONS.c.member_id,
            INTERACTIONS.c.identity_id,
            INTERACTIONS.c.kind,
            INTERACTIONS.c.occurred_at,
        ).where(among(session, INTERACTIONS.c.activity_id, rest))
    ).all()
    rows.activities += session.execute(
        select(ACTIVITIES.c.id, ACTIVITIES.c.kind, ACTIVITIES.c.occurred_at, ACTIVITIES.c.noise).where(
            among(session, ACTIVITIES.c.id, rest)
        )
    ).all()
    return rows
