"""Outlook-only meetings of the World and the Graph events of each member's calendar.

A member's Outlook calendar holds meetings shared with their Google Calendar (the same iCalUID, via
sandbox.microsoft_shared_meetings) and these Outlook-only ones. Recurring meetings are weekly series:
Graph shows each occurrence with its own iCalUId and the series master (GET /me/events/{seriesMasterId})
with the series' iCalUId; a client keys an occurrence as master iCalUId + "@" + originalStart in UTC.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox import vocab
from sandbox.graph_mailgen import graph_id
from sandbox.microsoft_shared_meetings import graph_person, graph_when, shared_events
from sandbox.world import World

RESPONSES = ("accepted", "accepted", "accepted", "tentativelyAccepted", "none", "declined")


@dataclass(frozen=True)
class Meeting:
    """One meeting as its organizer made it; `attendees` are (email, name, response)."""

    uid: str
    subject: str
    organizer: tuple[str, str]
    attendees: tuple[tuple[str, str, str], ...]
    start: datetime
    minutes: int
    all_day: bool
    occurrences: int  # 1: a single meeting; more: a weekly series
    cancelled: bool

    def starts(self) -> list[datetime]:
        return [self.start + timedelta(weeks=i) for i in range(self.occurrences)]


def _uid(rng: random.Random) -> str:
    return "040000008200E00074C5B7101A82E00800000000" + f"{rng.getrandbits(128):032X}"


def world_meetings(world: World) -> list[Meeting]:
    """The world's Outlook-only meetings over the mail span and two months ahead."""
    rng = random.Random(f"{world.seed}:meetings")
    externals = [p for p in world.people if not p.colleague]
    members = list(world.members)
    if not externals or not members:
        return []
    meetings: list[Meeting] = []
    for _ in range(max(12, len(externals) // 3)):
        host = rng.choice(members)
        guests = [(p.email, p.name) for p in rng.sample(externals, min(len(externals), 1 + int(rng.random() ** 2 * 4)))]
        if rng.random() < 0.04:
            guests = [(p.email, p.name) for p in rng.sample(externals, min(len(externals), 30))]
        if rng.random() < 0.3:
            other = rng.choice(members)
            if other != host:
                guests.append((other, world.member_names.get(other, other)))
        organizer = (host, world.member_names.get(host, host))
        if rng.random() < 0.25:  # an external invites: the member becomes an attendee
            guests.append(organizer)
            email, name = guests.pop(0)
            organizer = (email, name)
        day = world.now - timedelta(days=rng.randint(-60, 380))
        start = day.replace(hour=rng.randint(8, 17), minute=rng.choice((0, 30)), second=0, microsecond=0)
        all_day = rng.random() < 0.05
        if all_day:
            start = start.replace(hour=0, minute=0)
        meetings.append(
            Meeting(
                uid=_uid(rng),
                subject=rng.choice(vocab.SUBJECTS).format(
                    q=1, company="Acme", n=rng.randint(1000, 9999), day=rng.choice(vocab.DAYS), v=2
                ),
                organizer=organizer,
                attendees=tuple((e, n, rng.choice(RESPONSES)) for e, n in guests),
                start=start,
                minutes=1440 if all_day else rng.choice((30, 30, 45, 60, 90)),
                all_day=all_day,
                occurrences=rng.randint(3, 8) if rng.random() < 0.15 else 1,
                cancelled=rng.random() < 0.05,
            )
        )
    return meetings


def _event(owner: str, meeting: Meeting, start: datetime) -> dict[str, Any]:
    """The Graph event fields shared by a single meeting, an occurrence and a series master."""
    is_organizer = meeting.organizer[0] == owner
    own = next((r for e, _, r in meeting.attendees if e == owner), "none")
    return {
        "subject": meeting.subject,
        "start": graph_when(start),
        "end": graph_when(start + timedelta(minutes=meeting.minutes)),
        "isAllDay": meeting.all_day,
        "isCancelled": meeting.cancelled,
        "isOrganizer": is_organizer,
        "organizer": graph_person(*meeting.organizer),
        "attendees": [
            {"type": "required", "status": {"response": r, "time": "0001-01-01T00:00:00Z"}, **graph_person(e, n)}
            for e, n, r in meeting.attendees
        ],
        "responseStatus": {"response": "organizer" if is_organizer else own, "time": "0001-01-01T00:00:00Z"},
        "showAs": "busy",
    }


def in_calendar(owner: str, meeting: Meeting) -> bool:
    """Whether the meeting sits in `owner`'s Outlook calendar (Outlook drops what one declined)."""
    if meeting.organizer[0] == owner:
        return True
    return any(e == owner and r != "declined" for e, _, r in meeting.attendees)


def outlook_events(owner: str, meetings: list[Meeting], google: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("event" | "master", Graph event) pairs for `owner`: shared with Google, then Outlook-only meetings."""
    yield from shared_events(owner, google)
    for meeting in meetings:
        if not in_calendar(owner, meeting):
            continue
        if meeting.occurrences == 1:
            yield (
                "event",
                {
                    "id": graph_id(owner, meeting.uid),
                    "iCalUId": meeting.uid,
                    "type": "singleInstance",
                    "seriesMasterId": None,
                    "originalStart": None,
                    **_event(owner, meeting, meeting.start),
                },
            )
            continue
        master_id = graph_id(owner, meeting.uid, "master")
        yield (
            "master",
            {
                "id": master_id,
                "iCalUId": meeting.uid,
                "type": "seriesMaster",
                "seriesMasterId": None,
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1},
                    "range": {"type": "numbered", "numberOfOccurrences": meeting.occurrences},
                },
                **_event(owner, meeting, meeting.start),
            },
        )
        for start in meeting.starts():
            stamp = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            occurrence_uid = (
                "040000008200E00074C5B7101A82E008"
                + hashlib.sha256(f"{meeting.uid}{stamp}".encode()).hexdigest()[:56].upper()
            )
            yield (
                "event",
                {
                    "id": graph_id(owner, meeting.uid, stamp),
                    "iCalUId": occurrence_uid,
                    "type": "occurrence",
                    "seriesMasterId": master_id,
                    "originalStart": stamp,
                    **_event(owner, meeting, start),
                },
            )
