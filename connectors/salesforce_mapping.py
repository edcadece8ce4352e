"""Salesforce rows to observations: users, contacts and leads as people; calls, logged emails and events as activities.

Every field may be null. Activities name people by record id only (`person_ref`): owners as
"salesforce:user:<UserId>", contacts and leads as "salesforce:<WhoId>". A row with no Id, or an
activity with no usable date, is a Rejection; an unusable email on a person is a Rejection beside the
person, who is still observed with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any

from connectors.base import (
    ActivityKind,
    ActivityObservation,
    Deletion,
    Observation,
    Participant,
    PersonObservation,
    Rejection,
)
from connectors.emails import InvalidAddress, normalize_email

SOURCE = "salesforce"
USER_PREFIX, CONTACT_PREFIX, LEAD_PREFIX = "005", "003", "00Q"
PERSON_PREFIXES = (CONTACT_PREFIX, LEAD_PREFIX)

Row = dict[str, Any]


@dataclass
class Mapped:
    """What a page's rows became."""

    observations: list[Observation] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def person_ref(record_id: str) -> str:
    return f"{SOURCE}:{record_id}"


def user_ref(user_id: str) -> str:
    return f"{SOURCE}:user:{user_id}"


def text(row: Row, name: str) -> str | None:
    """A string field, stripped; None when null, empty or not a string."""
    value = row.get(name)
    return value.strip() or None if isinstance(value, str) else None


def parse_datetime(value: Any) -> datetime | None:
    """A Salesforce dateTime ("2026-01-02T03:04:05.000+0000") as aware UTC, or None."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # unreadable, or beyond UTC's range (year 1 east of UTC)
        return None


def parse_date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _emails(row: Row, record_id: str, out: Mapped) -> tuple[str, ...]:
    raw = text(row, "Email")
    if raw is None:
        return ()
    try:
        return (normalize_email(raw),)
    except InvalidAddress as exc:
        out.rejections.append(Rejection(SOURCE, record_id, "bad_address", f"Email field: {exc.reason}"))
        return ()


def _phones(row: Row) -> tuple[str, ...]:
    found = [p for p in (text(row, "Phone"), text(row, "MobilePhone")) if p]
    return tuple(dict.fromkeys(found))


def _company(row: Row) -> str | None:
    account = row.get("Account")
    if isinstance(account, dict):
        return text(account, "Name")
    return text(row, "Company")


def map_person(row: Row, kind: str, out: Mapped) -> PersonObservation | None:
    """A contact, lead or user row; a deleted row becomes a Deletion (merge handling is the caller's)."""
    record_id = text(row, "Id")
    if record_id is None:
        out.rejections.append(Rejection(SOURCE, "", "no_id", f"a {kind} row without an Id"))
        return None
    external_id = f"user:{record_id}" if kind == "user" else record_id
    if row.get("IsDeleted") is True:
        out.observations.append(Deletion(SOURCE, external_id))
        return None
    person = PersonObservation(
        source=SOURCE,
        external_id=external_id,
        name=text(row, "Name"),
        emails=_emails(row, external_id, out),
        phones=_phones(row),
        company=None if kind == "user" else _company(row),
        kind=kind,
    )
    out.observations.append(person)
    return person


def _task_kind(row: Row) -> ActivityKind | None:
    subtype = text(row, "TaskSubtype")
    if subtype == "Call" or (subtype in (None, "Task") and text(row, "CallType")):
        return "call"
    if subtype == "Email":
        return "crm_email"
    return None  # to-dos, list emails, cadence steps: not interactions


def _task_time(row: Row) -> datetime | None:
    """The day the activity is dated (ActivityDate), at the creation time when it was logged that day."""
    created, day = parse_datetime(row.get("CreatedDate")), parse_date(row.get("ActivityDate"))
    if day is None:
        return created
    if created is not None and created.date() == day:
        return created
    return datetime.combine(day, time(12, 0), UTC)  # a date alone: midday UTC stays on that day everywhere


def _owner_and_who(row: Row) -> list[Participant]:
    people: list[Participant] = []
    owner = text(row, "OwnerId")
    if owner is not None and owner.startswith(USER_PREFIX):
        people.append(Participant("owner", "", person_ref=user_ref(owner)))
    who = text(row, "WhoId")
    if who is not None and who.startswith(PERSON_PREFIXES):
        people.append(Participant("associated", "", person_ref=person_ref(who)))
    return people


def map_task(row: Row, out: Mapped) -> None:
    """A logged call or email; other task subtypes are skipped (deleted ones still become Deletions)."""
    record_id = text(row, "Id")
    if record_id is None:
        out.rejections.append(Rejection(SOURCE, "", "no_id", "a task row without an Id"))
        return
    if row.get("IsDeleted") is True:
        out.observations.append(Deletion(SOURCE, record_id))
        return
    kind = _task_kind(row)
    if kind is None:
        return
    when = _task_time(row)
    if when is None:
        out.rejections.append(Rejection(SOURCE, record_id, "no_date", "task without ActivityDate or CreatedDate"))
        return
    out.observations.append(_activity(row, record_id, kind, when, tuple(_owner_and_who(row))))


def _activity(
    row: Row, record_id: str, kind: ActivityKind, when: datetime, people: tuple[Participant, ...]
) -> ActivityObservation:
    return ActivityObservation(
        source=SOURCE,
        external_id=record_id,
        kind=kind,
        dedupe_key=f"{SOURCE}:{record_id}",
        occurred_at=when,
        participants=people,
        subject=text(row, "Subject"),  # the sync layer drops it unless the org keeps subjects
    )


def _event_time(row: Row) -> datetime | None:
    for name in ("StartDateTime", "ActivityDateTime"):
        found = parse_datetime(row.get(name))
        if found is not None:
            return found
    day = parse_date(row.get("ActivityDate"))
    return datetime.combine(day, time(0, 0), UTC) if day is not None else None


def _relations(row: Row) -> list[Participant]:
    """Invitees from the EventRelations subquery (people and users; accounts and opportunities skipped)."""
    block = row.get("EventRelations")
    rows = block.get("records") if isinstance(block, dict) else None
    people: list[Participant] = []
    for rel in rows if isinstance(rows, list) else ():
        relation = text(rel, "RelationId") if isinstance(rel, dict) else None
        if relation is None or rel.get("IsWhat") is True:
            continue
        declined = text(rel, "Status") == "Declined"
        if relation.startswith(USER_PREFIX):
            people.append(Participant("attendee", "", declined=declined, person_ref=user_ref(relation)))
        elif relation.startswith(PERSON_PREFIXES):
            people.append(Participant("attendee", "", declined=declined, person_ref=person_ref(relation)))
    return people


def map_event(row: Row, out: Mapped) -> None:
    """A meeting as a calendar sees it: the owner organizes, the WhoId and the invitees attend (each once,
    an invitee's answer wins), so DESIGN.md's meeting rule applies: a declined invitee meets no one, and a
    member who accepted an invitation meets the external attendees as the organizer does."""
    record_id = text(row, "Id")
    if record_id is None:
        out.rejections.append(Rejection(SOURCE, "", "no_id", "an event row without an Id"))
        return
    if row.get("IsDeleted") is True:
        out.observations.append(Deletion(SOURCE, record_id))
        return
    when = _event_time(row)
    if when is None:
        out.rejections.append(Rejection(SOURCE, record_id, "no_date", "event without StartDateTime or ActivityDate"))
        return
    first = _owner_and_who(row)
    organizer = [replace(p, role="organizer") for p in first if p.role == "owner"]
    attendees: dict[str, Participant] = {}
    for person in [replace(p, role="attendee") for p in first if p.role == "associated"] + _relations(row):
        attendees[person.person_ref or ""] = person  # later rows win: the invitee row carries the answer
    people = (*organizer, *attendees.values())
    out.observations.append(_activity(row, record_id, "meeting", when, people))
