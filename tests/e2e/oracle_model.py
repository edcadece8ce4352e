"""The multi-source oracle's vocabulary: a copy of an activity as one source shows it, and a person record.

Each source reader (oracle_mailcal.py, oracle_crm.py, oracle_books.py) turns the raw data an emulator
serves into these plain values; oracle_sources.py applies DESIGN.md's rules to them. Nothing here
imports the product.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import phonenumbers

CALENDAR_HOSTS = ".calendar.google.com"  # group., resource., group.v. calendars: not people (gcal docs)
_BRACKETED = re.compile(r"<([^<>]*)>")


@dataclass(frozen=True)
class Party:
    """One participant on one copy: a normalized address, or a CRM record reference `ref:<source>:<id>`."""

    role: str  # from, to, cc, bcc, organizer, attendee, owner, associated
    who: str
    name: str | None = None
    declined: bool = False


@dataclass(frozen=True)
class Copy:
    """One sighting of a real-world event: one mailbox's message, one calendar's event, one CRM row."""

    source: str
    key: str  # Message-ID, iCalUID (with "@<original start>" for an instance), or "<source>:<record id>"
    kind: str  # email, meeting, call, crm_email, crm_email_in
    time: datetime
    parties: tuple[Party, ...]
    noise: bool = False
    malformed_from: bool = False


@dataclass(frozen=True)
class Record:
    """An address-book or CRM entry as its source serves it (emails and phones normalized)."""

    ref: str  # "<source>:<external id>", e.g. "salesforce:003…", "hubspot:owner:42", "google_contacts:people/c1"
    kind: str  # contact, lead, other_contact, user
    name: str | None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    company: str | None = None
    merged_from: tuple[str, ...] = ()  # refs of records the source merged into this one
    holders: int = 1  # connections that read it (a CRM org is read by every rep who connected it)


def utc(moment: datetime) -> datetime:
    """Aware UTC (a naive value is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_iso(value: object) -> datetime | None:
    """An ISO 8601 timestamp ("…Z", "+0000", Graph's 7-digit fractions) as aware UTC, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # trim fractions to microseconds, keep any offset
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        offset = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{offset}"
    if text.endswith("+0000"):
        text = text[:-5] + "+00:00"
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def normalize_phone(raw: str, region: str = "US") -> str | None:
    """DESIGN.md: E.164 with `phonenumbers` in the org's region; None when unparseable or not a valid number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phones_of(values: object, region: str = "US") -> tuple[str, ...]:
    """The valid E.164 numbers among raw strings (order kept, each once)."""
    found: dict[str, None] = {}
    for raw in values if isinstance(values, list | tuple) else ():
        if isinstance(raw, str) and raw.strip():
            phone = normalize_phone(raw.strip(), region)
            if phone is not None:
                found[phone] = None
    return tuple(found)


def iso_z(moment: datetime) -> str:
    """Second-precision UTC with a Z (how instance keys name their original start)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_id_key(value: object) -> str | None:
    """An RFC 5322 Message-ID as a key: the bracketed part, whitespace and brackets stripped (as oracle.py)."""
    if not isinstance(value, str):
        return None
    found = _BRACKETED.search(value)
    key = "".join((found.group(1) if found else value).split()).strip("<>")
    return key or None
