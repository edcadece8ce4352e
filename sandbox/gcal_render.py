"""Calendar v3 resources (Event, CalendarListEntry, Calendar) as the discovery document shapes them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from sandbox.gcal_model import Attendee, Calendar, CalEvent

_ETAG_BASE = 3_400_000_000_000_000


def rfc3339(when: datetime) -> str:
    """2026-10-05T16:00:00.000Z, as Google writes `updated` and `created`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def etag(seq: int) -> str:
    return f'"{_ETAG_BASE + seq * 1000}"'


def event_resource(event: CalEvent, cal: Calendar) -> dict[str, Any]:
    """An Event as seen on `cal`; a cancelled one is the bare tombstone Google sends."""
    body: dict[str, Any] = {"kind": "calendar#event", "etag": etag(event.seq), "id": event.id, "status": event.status}
    if event.recurring_event_id is not None:
        body["recurringEventId"] = event.recurring_event_id
    if event.original_start is not None:
        body["originalStartTime"] = event.original_start.resource()
    if event.status == "cancelled":
        return body
    link = base64.urlsafe_b64encode(f"{event.id} {cal.id}".encode()).decode().rstrip("=")
    organizer: dict[str, Any] = {"email": event.organizer_email}
    if event.organizer_name:
        organizer["displayName"] = event.organizer_name
    if event.organizer_email == cal.id:
        organizer["self"] = True
    body |= {
        "htmlLink": f"https://www.google.com/calendar/event?eid={link}",
        "created": rfc3339(event.created),
        "updated": rfc3339(event.updated),
        "summary": event.summary,
        "creator": dict(organizer),
        "organizer": organizer,
    }
    if event.start is not None:
        body["start"] = event.start.resource()
    if event.end is not None:
        body["end"] = event.end.resource()
    if event.recurrence:
        body["recurrence"] = list(event.recurrence)
    body["iCalUID"] = event.ical_uid
    body["sequence"] = event.sequence
    if event.attendees:
        body["attendees"] = [_attendee(a, event, cal) for a in event.attendees]
    body["reminders"] = {"useDefault": True}
    body["eventType"] = event.event_type
    return body


def _attendee(attendee: Attendee, event: CalEvent, cal: Calendar) -> dict[str, Any]:
    out: dict[str, Any] = {"email": attendee.email}
    if attendee.name:
        out["displayName"] = attendee.name
    if attendee.email == event.organizer_email:
        out["organizer"] = True
    if attendee.email == cal.id:
        out["self"] = True
    if attendee.resource:
        out["resource"] = True
    if attendee.optional:
        out["optional"] = True
    out["responseStatus"] = attendee.response
    return out


def calendar_list_entry(cal: Calendar, role: str, seq: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": "calendar#calendarListEntry",
        "etag": etag(seq),
        "id": cal.id,
        "summary": cal.summary,
        "timeZone": cal.time_zone,
        "colorId": "14" if cal.primary else "7",
        "backgroundColor": "#9fe1e7" if cal.primary else "#42d692",
        "foregroundColor": "#000000",
        "selected": True,
        "accessRole": role,
        "defaultReminders": [{"method": "popup", "minutes": 10}] if role == "owner" else [],
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    }
    if cal.primary and role == "owner":
        entry["primary"] = True
    return entry


def calendar_resource(cal: Calendar, seq: int) -> dict[str, Any]:
    return {
        "kind": "calendar#calendar",
        "etag": etag(seq),
        "id": cal.id,
        "summary": cal.summary,
        "timeZone": cal.time_zone,
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    }
