"""A Graph calendarView event into one meeting observation (or a Deletion), never raising.

Graph gives each occurrence of a series its own iCalUId, so an occurrence is keyed as its series
master's iCalUId + "@" + originalStart in UTC ("2026-03-02T15:00:00Z") — the same rule as Google
Calendar's instances, so one meeting seen through both providers is one activity.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.addresses import display_name
from connectors.base import ActivityObservation, Deletion, Observation, Participant, Rejection
from connectors.dates import named_zone
from connectors.emails import InvalidAddress, normalize_email
from connectors.noise import is_calendar
from connectors.outlook_mail_mapping import parse_time

SOURCE = "outlook_calendar"
_UTC_NAMES = frozenset({"", "utc", "etc/utc", "coordinated universal time", "tzone://microsoft/utc"})


def instance_key(master_uid: str, original_start: datetime) -> str:
    """iCalUID + "@" + the original start in UTC, second precision: the cross-provider occurrence key."""
    return f"{master_uid}@{original_start.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def event_time(value: Any) -> datetime | None:
    """A dateTimeTimeZone ({"dateTime": "…0000000", "timeZone": "UTC"}) as aware UTC, or None."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        return None
    text = value["dateTime"].replace("Z", "")
    head, _, fraction = text.partition(".")
    try:
        moment = datetime.fromisoformat(head + (f".{fraction[:6]}" if fraction else ""))
    except ValueError:
        return None
    name = str(value.get("timeZone") or "")
    if name.lower() in _UTC_NAMES:
        return moment.replace(tzinfo=UTC)
    zone = named_zone(name)
    try:
        return None if zone is None else moment.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:
        return None


def _offset_time(value: Any) -> datetime | None:
    """originalStart, a DateTimeOffset: the same reading as a message's times."""
    return parse_time(value)


def dedupe_key(event: Mapping[str, Any], masters: Mapping[str, str]) -> str | None:
    """The meeting key: iCalUId, or master iCalUId @ originalStart for an occurrence or exception."""
    master_id, original = event.get("seriesMasterId"), _offset_time(event.get("originalStart"))
    if isinstance(master_id, str) and master_id in masters and original is not None:
        return instance_key(masters[master_id], original)
    uid = event.get("iCalUId")
    return uid if isinstance(uid, str) and uid else None


def _address(entry: Any) -> tuple[str, str] | None:
    address = entry.get("emailAddress") if isinstance(entry, dict) else None
    if not isinstance(address, dict):
        return None
    return str(address.get("address") or ""), str(address.get("name") or "")


def _participants(event_id: str, event: Mapping[str, Any]) -> tuple[tuple[Participant, ...], list[Rejection]]:
    """The organizer and every non-resource attendee (declined flagged); bad addresses become rejections."""
    found: dict[tuple[str, str], Participant] = {}
    rejections: list[Rejection] = []
    entries = [("organizer", event.get("organizer"))]
    attendees = event.get("attendees")
    entries += [
        ("attendee", a)
        for a in (attendees if isinstance(attendees, list) else ())
        if not (isinstance(a, dict) and a.get("type") == "resource")
    ]
    for role, entry in entries:
        pair = _address(entry)
        if pair is None:
            continue
        try:
            email = normalize_email(pair[0])
        except InvalidAddress as exc:
            rejections.append(Rejection(SOURCE, event_id, exc.reason, f"{role}: {pair[0][:120]}"))
            continue
        if is_calendar(email):  # a Google invitation mirrored into Outlook names the calendar, not a person
            continue
        status = entry.get("status") if isinstance(entry, dict) else None
        declined = isinstance(status, dict) and status.get("response") == "declined"
        participant = Participant(
            "organizer" if role == "organizer" else "attendee", email, display_name(pair[1], email), declined=declined
        )
        found.setdefault((participant.role, email), participant)
    return tuple(found.values()), rejections


def map_event(event: Mapping[str, Any], masters: Mapping[str, str]) -> tuple[Observation | None, list[Rejection]]:
    """One event to an ActivityObservation; a cancelled one to a Deletion."""
    event_id = str(event["id"])
    if event.get("isCancelled") is True:
        return Deletion(SOURCE, event_id), []
    key = dedupe_key(event, masters)
    start = event_time(event.get("start"))
    if key is None or start is None:
        reason = "no_ical_uid" if key is None else "no_start"
        return None, [Rejection(SOURCE, event_id, reason, "event without iCalUId or a usable start")]
    participants, rejections = _participants(event_id, event)
    subject = event.get("subject")
    return ActivityObservation(
        source=SOURCE,
        external_id=event_id,
        kind="meeting",
        dedupe_key=key,
        occurred_at=start,
        participants=participants,
        subject=subject if isinstance(subject, str) else None,
    ), rejections
