"""A Calendar v3 event into one meeting observation (or a Deletion) plus rejections, never raising.

Who takes part: the organizer (role organizer) and every attendee (role attendee, `declined` when
responseStatus is "declined"; the calendar owner's own entry, `self`, included). Rooms and other
resources (`resource: true`) and calendars (…calendar.google.com addresses, e.g. the secondary calendar
an event was created on) are not people. A meeting with nobody but its owner is still an activity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from connectors.base import ActivityObservation, Deletion, Observation, Participant, ParticipantRole, Rejection
from connectors.dates import named_zone
from connectors.emails import InvalidAddress, normalize_email
from connectors.noise import MAX_PARTICIPANTS, is_calendar

SOURCE = "google_calendar"
NOT_MEETINGS = frozenset({"outOfOffice", "focusTime", "workingLocation", "birthday"})


@dataclass(frozen=True)
class Mapped:
    """What one event gave: an observation (None when skipped or unusable) and rejections."""

    observation: Observation | None
    rejections: list[Rejection] = field(default_factory=list)


def external_id(calendar_id: str, event_id: str) -> str:
    """Unique per connection: one event id can sit in two of the rep's calendars."""
    return f"{calendar_id}/{event_id}"


def event_time(value: object) -> datetime | None:
    """An EventDateTime as UTC: dateTime (with its offset, or without one in its timeZone), or an all-day
    date at 00:00 UTC; None when unreadable or beyond what UTC can hold (year 1 east of UTC)."""
    if not isinstance(value, Mapping):
        return None
    try:
        if isinstance(value.get("dateTime"), str):
            moment = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
            if moment.tzinfo is None:  # the API allows an offset-less time when timeZone names the zone
                zone = named_zone(value.get("timeZone"))
                if zone is None:
                    return None
                moment = moment.replace(tzinfo=zone)
            return moment.astimezone(UTC)
        if isinstance(value.get("date"), str):
            return datetime.combine(date.fromisoformat(str(value["date"])), time(), UTC)
    except (ValueError, OverflowError):
        return None
    return None


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dedupe_key(event: Mapping[str, Any]) -> str | None:
    """iCalUID; an instance of a series adds "@" and its original start in UTC (the series shares the UID)."""
    uid = event.get("iCalUID")
    if not isinstance(uid, str) or not uid.strip():
        return None
    if event.get("recurringEventId"):
        original = event_time(event.get("originalStartTime"))
        if original is None:
            return None
        return f"{uid.strip()}@{utc_iso(original)}"
    return uid.strip()


def _person(entry: object) -> tuple[str, str | None, bool] | None:
    """(raw email, display name, is a resource) of an organizer or attendee entry."""
    if not isinstance(entry, Mapping):
        return None
    name = entry.get("displayName")
    return (
        str(entry.get("email") or ""),
        str(name) if isinstance(name, str) and name else None,
        bool(entry.get("resource")),
    )


def _participants(ext_id: str, event: Mapping[str, Any]) -> tuple[tuple[Participant, ...], list[Rejection]]:
    people: dict[tuple[str, str], Participant] = {}
    rejections: list[Rejection] = []
    attendees = event.get("attendees")
    entries: list[tuple[ParticipantRole, object]] = [("organizer", event.get("organizer"))]
    entries += [("attendee", a) for a in (attendees if isinstance(attendees, list) else ())]
    for role, entry in entries:
        found = _person(entry)
        if found is None or found[2] or (role == "organizer" and not found[0]):
            continue
        raw, name, _ = found
        try:
            email = normalize_email(raw)
        except InvalidAddress as exc:
            rejections.append(Rejection(SOURCE, ext_id, exc.reason, f"{role.title()}: {raw[:120]}"))
            continue
        if is_calendar(email):
            continue
        declined = role == "attendee" and isinstance(entry, Mapping) and entry.get("responseStatus") == "declined"
        people.setdefault((role, email), Participant(role, email, name, declined))
    return tuple(people.values()), rejections


def map_event(calendar_id: str, event: Mapping[str, Any], window_start: datetime) -> Mapped:
    """One events.list item to a meeting, a Deletion (cancelled, or ended before the window) or nothing."""
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        return Mapped(None, [Rejection(SOURCE, "", "no_id", f"event without an id on {calendar_id}")])
    ext_id = external_id(calendar_id, event_id)
    if event.get("status") == "cancelled":
        return Mapped(Deletion(SOURCE, ext_id))
    if str(event.get("eventType")) in NOT_MEETINGS:
        return Mapped(None)
    start = event_time(event.get("start"))
    if start is None:
        return Mapped(None, [Rejection(SOURCE, ext_id, "no_time", "event without a usable start")])
    end = event_time(event.get("end")) or start
    if end <= window_start:  # changed long ago: out of the backfill window, as a full pass leaves it
        return Mapped(Deletion(SOURCE, ext_id))
    key = dedupe_key(event)
    if key is None:
        return Mapped(None, [Rejection(SOURCE, ext_id, "no_ical_uid", "event without iCalUID or original start")])
    participants, rejections = _participants(ext_id, event)
    summary = event.get("summary")
    observation = ActivityObservation(
        source=SOURCE,
        external_id=ext_id,
        kind="meeting",
        dedupe_key=key,
        occurred_at=start,
        participants=participants,
        noise="too_many" if len({p.email for p in participants}) > MAX_PARTICIPANTS else None,
        subject=summary if isinstance(summary, str) else None,
    )
    return Mapped(observation, rejections)
