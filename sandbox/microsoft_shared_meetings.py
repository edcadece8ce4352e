"""Meetings a member has in both calendars: their Google Calendar events, as Outlook would show them.

Drawn from the Google Calendar emulator's generator for the same world (sandbox.gcal_data), so the
iCalUID is the same on both sides: every Outlook-originated event there ("040000008200E…") and a
stable ~30% of the rest. A series becomes a Graph series master plus occurrences whose originalStart
is the Google instance's original start. If that generator is unavailable, there are none.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sandbox.graph_mailgen import graph_id
from sandbox.world import World

log = logging.getLogger(__name__)
GRAPH_TIME = "%Y-%m-%dT%H:%M:%S.0000000"
OUTLOOK_UID = "040000008200E"
RESPONSES = {"accepted": "accepted", "tentative": "tentativelyAccepted", "declined": "declined"}
_SHARE_PERCENT = 30


def graph_when(moment: datetime) -> dict[str, str]:
    """A Graph dateTimeTimeZone in UTC."""
    return {"dateTime": moment.astimezone(UTC).strftime(GRAPH_TIME), "timeZone": "UTC"}


def graph_person(email: str, name: str) -> dict[str, Any]:
    return {"emailAddress": {"name": name or email, "address": email}}


def _shared(uid: str) -> bool:
    return uid.startswith(OUTLOOK_UID) or hashlib.sha256(uid.encode()).digest()[0] * 100 < _SHARE_PERCENT * 256


def google_calendars(world: World) -> dict[str, list[Any]]:
    """Each member's primary Google calendar, expanded to instances; {} when the generator is not there."""
    try:
        from sandbox.gcal_data import calendar_store

        store = calendar_store(world, lock=threading.RLock(), clock=time.time)
        found = {m: store.calendar_for(m, "primary") for m in world.members}
        return {m: store.expanded(cal[0]) for m, cal in found.items() if cal is not None}
    except (ImportError, AttributeError, TypeError, KeyError) as exc:  # developed alongside; never fatal here
        log.warning("no Google calendar to share meetings from: %s", exc)
        return {}


def _graph_event(owner: str, event: Any) -> dict[str, Any]:
    start, end = event.start.utc(), (event.end or event.start).utc()
    attendees = [a for a in event.attendees if not a.resource]
    own = next((a.response for a in attendees if a.email == owner), "")
    is_organizer = event.organizer_email == owner
    return {
        "subject": event.summary,
        "start": graph_when(start),
        "end": graph_when(end),
        "isAllDay": event.start.day is not None,
        "isCancelled": event.status == "cancelled",
        "isOrganizer": is_organizer,
        "organizer": graph_person(event.organizer_email, event.organizer_name),
        "attendees": [
            {
                "type": "optional" if a.optional else "required",
                "status": {"response": RESPONSES.get(a.response, "notResponded"), "time": "0001-01-01T00:00:00Z"},
                **graph_person(a.email, a.name),
            }
            for a in attendees
        ],
        "responseStatus": {
            "response": "organizer" if is_organizer else RESPONSES.get(own, "notResponded"),
            "time": "0001-01-01T00:00:00Z",
        },
        "showAs": "busy",
    }


def shared_events(owner: str, google: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("event" | "master", Graph event) pairs for the meetings `owner` has in both calendars."""
    masters: set[str] = set()
    for event in google:
        if event.start is None or event.event_type != "default" or not _shared(event.ical_uid):
            continue
        if any(a.email == owner and a.response == "declined" for a in event.attendees):
            continue  # Outlook drops a meeting its owner declined
        body = _graph_event(owner, event)
        if event.recurring_event_id is None or event.original_start is None:
            yield (
                "event",
                {
                    "id": graph_id(owner, "g", event.ical_uid),
                    "iCalUId": event.ical_uid,
                    "type": "singleInstance",
                    "seriesMasterId": None,
                    "originalStart": None,
                    **body,
                },
            )
            continue
        master_id = graph_id(owner, "g", event.ical_uid, "master")
        if master_id not in masters:
            masters.add(master_id)
            yield (
                "master",
                {"id": master_id, "iCalUId": event.ical_uid, "type": "seriesMaster", "seriesMasterId": None, **body},
            )
        stamp = event.original_start.utc().strftime("%Y-%m-%dT%H:%M:%SZ")
        occurrence_uid = (
            "040000008200E00074C5B7101A82E008"
            + hashlib.sha256(f"{event.ical_uid}{stamp}".encode()).hexdigest()[:56].upper()
        )
        yield (
            "event",
            {
                "id": graph_id(owner, "g", event.ical_uid, stamp),
                "iCalUId": occurrence_uid,
                "type": "exception"
                if event.id != f"{event.recurring_event_id}_{event.original_start.id_suffix()}"
                else "occurrence",
                "seriesMasterId": master_id,
                "originalStart": stamp,
                **body,
            },
        )
