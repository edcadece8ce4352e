"""Copies of mail and meetings as the mailbox and calendar emulators serve them (Gmail, Outlook, Calendar).

Gmail copies go through oracle.py's header reading (stdlib `email.headerregistry`); Outlook messages and
both calendars are structured, so their addresses are read with oracle.py's `normalize_address`.
Decisions where DESIGN.md leaves room, each mirroring the product's documented behaviour:

- Windows: Gmail and Outlook mail copies received before `now - backfill_days` are never read; a Google
  Calendar event (or instance) that ended by then is not read; an Outlook event is read when it overlaps
  [now - backfill_days, now + 180 days] (the calendarView window of connectors/outlook_calendar.py).
- Calendars: the rep's primary Google calendar and the secondary ones the rep owns; subscribed
  calendars (holidays, a colleague's) are other people's records. Cancelled events and instances,
  out-of-office/focus/working-location/birthday entries and resources are not meetings.
- Calendar addresses (`…calendar.google.com`: the secondary calendar that organized an event) are not
  people, whichever provider shows them (connectors/gcal_mapping.py documents the rule).
- An organizer entry is never "declined"; an attendee entry is declined when its response says so.
- Meeting keys: the iCalUID; an instance of a series adds "@" and its original start in UTC, so a
  meeting seen in Google Calendar and in Outlook is one activity.
- Outlook mail under Mail.ReadBasic shows no transport headers: an Outlook copy is noise only by its
  sender's local part (its Gmail twin, when there is one, carries the List-Id verdict).
- A Graph recipient whose name is just its address again has no display name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.gcal_model import Attendee, CalEvent
from sandbox.gcal_store import CalendarStore
from sandbox.world import MailMessage
from tests.e2e.oracle import HIDDEN_LABELS, clean_name, is_automated, normalize_address, read_copy
from tests.e2e.oracle_model import CALENDAR_HOSTS, Copy, Party, iso_z, message_id_key, parse_iso

NOT_MEETINGS = frozenset({"outOfOffice", "focusTime", "workingLocation", "birthday"})
OUTLOOK_FUTURE_DAYS = 180
GRAPH_ROLES = (("from", "from"), ("to", "toRecipients"), ("cc", "ccRecipients"), ("bcc", "bccRecipients"))


def gmail_copies(mailboxes: Mapping[str, Iterable[MailMessage]], oldest: datetime) -> list[Copy]:
    """Every visible Gmail copy received inside the window, as oracle.py reads it."""
    out: list[Copy] = []
    for mailbox, messages in mailboxes.items():
        for msg in messages:
            if HIDDEN_LABELS & set(msg.label_ids):
                continue
            if datetime.fromtimestamp(msg.internal_date_ms / 1000, UTC) < oldest:
                continue
            copy = read_copy(mailbox, msg, set())
            parties = tuple(Party(role, email, name) for (role, email), name in copy.participants.items())
            out.append(Copy("gmail", copy.key, "email", copy.time, parties, copy.noise, not copy.has_sender))
    return out


def _graph_name(name: object, raw: str, email: str) -> str | None:
    text = name if isinstance(name, str) else ""
    if text.strip().lower() == raw.strip().lower():
        return None
    return clean_name(text.strip().strip('"').strip("'"), email)


def _graph_people(entries: object) -> list[tuple[str, object]]:
    """(raw address, name) of Graph recipient objects ({"emailAddress": {...}}, one or a list)."""
    items = entries if isinstance(entries, list) else [entries] if isinstance(entries, dict) else []
    found = []
    for item in items:
        address = item.get("emailAddress") if isinstance(item, dict) else None
        if isinstance(address, dict):
            found.append((str(address.get("address") or ""), address.get("name")))
    return found


def _graph_key(message: Mapping[str, Any]) -> str:
    # never None in the generated world (every message has an id); an id-less one would stay one copy
    return message_id_key(message.get("internetMessageId")) or "graph:" + str(message.get("id"))


def outlook_mail_copies(mailboxes: Mapping[str, Iterable[Mapping[str, Any]]], oldest: datetime) -> list[Copy]:
    """Every non-draft Outlook message (inbox and sent items) received inside the window."""
    out: list[Copy] = []
    floor = oldest.replace(microsecond=0)
    for messages in mailboxes.values():
        for message in messages:
            received = parse_iso(message.get("receivedDateTime"))
            if message.get("isDraft") is True or received is None or received < floor:
                continue
            parties: dict[tuple[str, str], str | None] = {}
            for role, field in GRAPH_ROLES:
                value = message.get(field) or (message.get("sender") if role == "from" else None)
                for raw, name in _graph_people(value):
                    email = normalize_address(raw)
                    if email is not None:
                        parties.setdefault((role, email), _graph_name(name, raw, email))
            senders = [email for role, email in parties if role == "from"]
            out.append(
                Copy(
                    "outlook_mail",
                    _graph_key(message),
                    "email",
                    parse_iso(message.get("sentDateTime")) or received,
                    tuple(Party(role, email, name) for (role, email), name in parties.items()),
                    noise=any(is_automated(s) for s in senders),
                    malformed_from=not senders,
                )
            )
    return out


def _meeting_party(role: str, raw: str, name: str | None, declined: bool) -> Party | None:
    email = normalize_address(raw)
    if email is None or email.endswith(CALENDAR_HOSTS):
        return None
    return Party(role, email, clean_name(name, email), declined and role == "attendee")


def _google_parties(event: CalEvent) -> tuple[Party, ...]:
    found: dict[tuple[str, str], Party] = {}
    entries: list[tuple[str, Attendee]] = []
    if event.organizer_email:
        entries.append(("organizer", Attendee(event.organizer_email, event.organizer_name)))
    entries += [("attendee", a) for a in event.attendees]
    for role, entry in entries:
        if entry.resource:
            continue
        party = _meeting_party(role, entry.email, entry.name or None, entry.response == "declined")
        if party is not None:
            found.setdefault((party.role, party.who), party)
    return tuple(found.values())


def google_calendar_copies(store: CalendarStore, members: Sequence[str], oldest: datetime) -> list[Copy]:
    """Each connected rep's own calendars (primary + owned secondary), instances expanded, inside the window."""
    out: list[Copy] = []
    for member in members:
        for calendar_id, role in store.lists.get(member, ()):
            calendar = store.calendars.get(calendar_id)
            if calendar is None or role != "owner":
                continue
            for event in store.expanded(calendar):
                if event.status == "cancelled" or event.event_type in NOT_MEETINGS or event.start is None:
                    continue
                if (event.end or event.start).utc() <= oldest:
                    continue
                key = event.ical_uid.strip()
                if event.recurring_event_id is not None and event.original_start is not None:
                    key = f"{key}@{iso_z(event.original_start.utc())}"
                out.append(Copy("google_calendar", key, "meeting", event.start.utc(), _google_parties(event)))
    return out


def _graph_time(value: object) -> datetime | None:
    if not isinstance(value, dict):
        return None
    zone = str(value.get("timeZone") or "UTC")
    assert zone.upper() == "UTC", f"the sandbox serves UTC event times, got {zone}"
    return parse_iso(value.get("dateTime"))


def _outlook_parties(event: Mapping[str, Any]) -> tuple[Party, ...]:
    found: dict[tuple[str, str], Party] = {}
    entries: list[tuple[str, Any]] = [("organizer", event.get("organizer"))]
    entries += [("attendee", a) for a in event.get("attendees") or () if (a or {}).get("type") != "resource"]
    for role, entry in entries:
        for raw, name in _graph_people(entry):
            status = entry.get("status") if isinstance(entry, dict) else None
            declined = isinstance(status, dict) and status.get("response") == "declined"
            email = normalize_address(raw)
            party = _meeting_party(role, raw, _graph_name(name, raw, email or raw), declined)
            if party is not None:
                found.setdefault((party.role, party.who), party)
    return tuple(found.values())


def outlook_calendar_copies(
    calendars: Mapping[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]], now: datetime, oldest: datetime
) -> list[Copy]:
    """Each connected rep's Outlook events ({rep: (events, series masters)}) overlapping the window."""
    out: list[Copy] = []
    latest = now + timedelta(days=OUTLOOK_FUTURE_DAYS)
    for events, masters in calendars.values():
        uid_of = {m["id"]: m.get("iCalUId") for m in masters}
        for event in events:
            start, end = _graph_time(event.get("start")), _graph_time(event.get("end"))
            if event.get("isCancelled") is True or start is None or end is None:
                continue
            if not (start < latest and end > oldest.replace(microsecond=0)):
                continue
            original = parse_iso(event.get("originalStart"))
            master_uid = uid_of.get(event.get("seriesMasterId"))
            key = f"{master_uid}@{iso_z(original)}" if master_uid and original else str(event.get("iCalUId"))
            out.append(Copy("outlook_calendar", key, "meeting", start, _outlook_parties(event)))
    return out
