"""HubSpot records (raw v3 JSON) into normalized observations and rejections, never raising.

Ids: a contact is `<contact id>` (so activities reference it as "hubspot:<id>"), an owner
"owner:<id>" (a `user` record, referenced as "hubspot:owner:<id>"), an engagement "call:<id>",
"meeting:<id>" or "email:<id>". A logged email is keyed by its RFC 5322 Message-ID when HubSpot holds
one (`hs_email_message_id`, set on mail logged from a connected inbox and readable under the
sales-email-read scope), so it is the same activity as the mailbox's copy; otherwise by
"hubspot:email:<id>". A cancelled meeting is a Deletion, as a cancelled calendar event is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from connectors.hubspot_scan import epoch_ms, is_number

SOURCE = "hubspot"
_BRACKETED_ID = re.compile(r"<([^<>]*)>")


@dataclass(frozen=True)
class Engagement:
    """How one engagement type maps: its activity kind, id prefix, title and time properties."""

    object_type: str
    kind: ActivityKind
    prefix: str
    title: str
    times: tuple[str, ...]  # first readable one wins; createdAt is the last resort


ENGAGEMENTS: dict[str, Engagement] = {
    "calls": Engagement("calls", "call", "call", "hs_call_title", ("hs_timestamp",)),
    "meetings": Engagement(
        "meetings", "meeting", "meeting", "hs_meeting_title", ("hs_meeting_start_time", "hs_timestamp")
    ),
    "emails": Engagement("emails", "crm_email", "email", "hs_email_subject", ("hs_timestamp",)),
}


@dataclass
class Mapped:
    """What a batch of records gave."""

    observations: list[Observation] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def props(record: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = record.get("properties")
    return raw if isinstance(raw, Mapping) else {}


def text(value: Any) -> str | None:
    """A property as stripped text; null, empty or non-scalar values are None."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        out = str(value).strip()
        return out or None
    return None


def record_key(record: Mapping[str, Any]) -> str | None:
    raw = text(record.get("id"))
    return raw if raw is not None and is_number(raw) else None


def when(record: Mapping[str, Any], names: Iterable[str]) -> datetime | None:
    """The first readable time among the named properties, else the record's createdAt."""
    values = [props(record).get(n) for n in names] + [record.get("createdAt")]
    for value in values:
        ms = epoch_ms(value)
        try:
            if ms is not None:
                return datetime.fromtimestamp(ms / 1000, UTC)
        except (OverflowError, OSError, ValueError):  # beyond any calendar: the next candidate
            continue
    return None


def _emails(record_id: str, values: Iterable[str | None], out: Mapped) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for value in values:
        if value is None:
            continue
        try:
            found[normalize_email(value)] = None
        except InvalidAddress as exc:
            out.rejections.append(Rejection(SOURCE, record_id, exc.reason, f"email: {value[:120]}"))
    return tuple(found)


def _name(first: Any, last: Any) -> str | None:
    return " ".join(part for part in (text(first), text(last)) if part) or None


def map_owner(owner: Mapping[str, Any], out: Mapped) -> None:
    """An owner (a HubSpot user) into a `user` person record."""
    owner_id = record_key(owner)
    if owner_id is None:
        out.rejections.append(Rejection(SOURCE, "", "no_id", "owner without a numeric id"))
        return
    external = f"owner:{owner_id}"
    emails = _emails(external, [text(owner.get("email"))], out)
    name = _name(owner.get("firstName"), owner.get("lastName"))
    out.observations.append(PersonObservation(SOURCE, external, name, emails, kind="user"))


def map_contact(contact: Mapping[str, Any], company_names: Mapping[str, str], out: Mapped) -> None:
    """A contact into a person record (tying its emails and phones), plus Deletions of ids merged into it."""
    contact_id = record_key(contact)
    if contact_id is None:
        out.rejections.append(Rejection(SOURCE, "", "no_id", "contact without a numeric id"))
        return
    p = props(contact)
    additional = (text(p.get("hs_additional_emails")) or "").split(";")
    emails = _emails(contact_id, [text(p.get("email")), *(text(a) for a in additional)], out)
    phones = tuple(dict.fromkeys(v for v in (text(p.get("phone")), text(p.get("mobilephone"))) if v))
    company = text(p.get("company")) or company_names.get(text(p.get("associatedcompanyid")) or "")
    merged = tuple(
        dict.fromkeys(
            m for m in ((text(x) or "") for x in (text(p.get("hs_merged_object_ids")) or "").split(";")) if is_number(m)
        )
    )
    name = _name(p.get("firstname"), p.get("lastname"))
    out.observations.append(PersonObservation(SOURCE, contact_id, name, emails, phones, company, merged, "contact"))
    out.observations.extend(Deletion(SOURCE, m) for m in merged if m != contact_id)


def message_id(value: Any) -> str | None:
    """An RFC 5322 Message-ID without angle brackets and whitespace, as mail sources key it."""
    raw = text(value)
    if raw is None:
        return None
    found = _BRACKETED_ID.search(raw)
    key = "".join((found.group(1) if found else raw).split()).strip("<>")
    return key or None


def engagement_id(spec: Engagement, record_id: str) -> str:
    return f"{spec.prefix}:{record_id}"


def email_kind(properties: Mapping[str, Any]) -> ActivityKind:
    """A logged email's direction (hs_email_direction): INCOMING_EMAIL was received, EMAIL and
    FORWARDED_EMAIL were sent by the owner."""
    received = (text(properties.get("hs_email_direction")) or "").upper() == "INCOMING_EMAIL"
    return "crm_email_in" if received else "crm_email"


def map_engagement(spec: Engagement, record: Mapping[str, Any], contacts: Iterable[str], out: Mapped) -> None:
    """A call, meeting or logged email into an activity owned by its owner, with its associated contacts."""
    record_id = record_key(record)
    if record_id is None:
        out.rejections.append(Rejection(SOURCE, "", "no_id", f"{spec.object_type} record without a numeric id"))
        return
    external = engagement_id(spec, record_id)
    p = props(record)
    if spec.object_type == "meetings" and (text(p.get("hs_meeting_outcome")) or "").upper() == "CANCELED":
        out.observations.append(Deletion(SOURCE, external))
        return
    occurred = when(record, spec.times)
    if occurred is None:
        out.rejections.append(Rejection(SOURCE, external, "no_timestamp", "no readable hs_timestamp nor createdAt"))
        return
    participants: list[Participant] = []
    owner = text(p.get("hubspot_owner_id"))
    if owner is not None and is_number(owner):
        participants.append(Participant("owner", "", person_ref=f"{SOURCE}:owner:{owner}"))
    for contact in sorted(set(contacts), key=lambda c: (len(c), c)):
        participants.append(Participant("associated", "", person_ref=f"{SOURCE}:{contact}"))
    dedupe = message_id(p.get("hs_email_message_id")) if spec.object_type == "emails" else None
    out.observations.append(
        ActivityObservation(
            source=SOURCE,
            external_id=external,
            kind=email_kind(p) if spec.object_type == "emails" else spec.kind,
            dedupe_key=dedupe or f"{SOURCE}:{external}",
            occurred_at=occurred,
            participants=tuple(participants),
            subject=text(p.get(spec.title)),
        )
    )
