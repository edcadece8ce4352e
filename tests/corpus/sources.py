"""Each provider payload through the mapping entry point its connector calls, as one comparable Outcome.

The corpus and the hypothesis strategies feed raw records here; nothing is stubbed: every function below
calls the same mapper, with the same arguments, as the connector's `fetch_page` does for one record.
Person records also go through the sync layer's `clean` (their phones normalized in the org's region),
since that is where a bad phone becomes a Rejection.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors import (
    gcal_mapping,
    gmail_mapping,
    hubspot_mapping,
    outlook_calendar_mapping,
    outlook_contacts,
    outlook_mail_mapping,
    people_mapping,
    salesforce_mapping,
)
from connectors.base import Deletion, Observation, PersonObservation, Rejection
from connectors.gmail import METADATA_HEADERS
from connectors.google_contacts import KINDS as PEOPLE_KINDS
from connectors.salesforce import PERSON_KINDS as SALESFORCE_PERSON_KINDS
from sync.records import clean

Context = Mapping[str, Any]
DEFAULT_WINDOW_START = "2025-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class Outcome:
    """What one record (or one page of records) became: observations, rejections, and clean phones by record."""

    observations: tuple[Observation, ...]
    rejections: tuple[Rejection, ...]
    phones: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (external id, E.164 phones) per person observed


def _outcome(observations: list[Observation], rejections: list[Rejection], region: str) -> Outcome:
    """Run the person observations through the sync layer's phone cleaning, as ingest does."""
    phones: list[tuple[str, tuple[str, ...]]] = []
    rejected = list(rejections)
    for obs in observations:
        if isinstance(obs, PersonObservation):
            cleaned, bad_phones = clean(obs, region)
            phones.append((obs.external_id, cleaned.phones))
            rejected += bad_phones
    return Outcome(tuple(observations), tuple(rejected), tuple(phones))


def _one(observation: Observation | None) -> list[Observation]:
    return [] if observation is None else [observation]


def gmail(record: Any, context: Context) -> Outcome:
    """gmail.fetch_page: one users.messages.get (format=metadata) item through map_message."""
    mapped = gmail_mapping.map_message(record)
    return _outcome(_one(mapped.observation), mapped.rejections, "US")


def google_calendar(record: Any, context: Context) -> Outcome:
    """google_calendar.fetch_page: one events.list item of one calendar, with the pass's window start."""
    window_start = datetime.fromisoformat(str(context.get("window_start", DEFAULT_WINDOW_START))).astimezone(UTC)
    mapped = gcal_mapping.map_event(str(context.get("calendar", "alice@acme.test")), record, window_start)
    return _outcome(_one(mapped.observation), mapped.rejections, "US")


def google_contacts(record: Any, context: Context) -> Outcome:
    """google_contacts.fetch_page: one connections / otherContacts item."""
    mapped = people_mapping.map_person(record, PEOPLE_KINDS[str(context.get("stream", "connections"))])
    return _outcome(_one(mapped.observation), mapped.rejections, str(context.get("region", "US")))


def graph_item(record: Any) -> tuple[bool, str | None]:
    """How connectors.graph_delta sorts a delta `value` item: (kept for mapping, id of a removal).

    An item is mapped when it is an object with a string id and no "@removed"; a removal with an id is a
    Deletion; anything else is left out of the page.
    """
    if not isinstance(record, dict):
        return False, None
    if "@removed" in record:
        return False, str(record["id"]) if record.get("id") else None
    return isinstance(record.get("id"), str), None


def outlook_mail(record: Any, context: Context) -> Outcome:
    """outlook_mail.fetch_page: one messages/delta item of the stream's folder."""
    stream = str(context.get("stream", "inbox"))
    keep, removed = graph_item(record)
    if removed is not None:
        return _outcome([Deletion(outlook_mail_mapping.SOURCE, f"{stream}:{removed}")], [], "US")
    if not keep:
        return _outcome([], [], "US")
    observation, rejections = outlook_mail_mapping.map_message(f"{stream}:{record['id']}", record)
    return _outcome(_one(observation), rejections, "US")


def outlook_calendar(record: Any, context: Context) -> Outcome:
    """outlook_calendar.fetch_page: one calendarView/delta item, with the series masters' iCalUIds looked up."""
    keep, removed = graph_item(record)
    if removed is not None:
        return _outcome([Deletion(outlook_calendar_mapping.SOURCE, removed)], [], "US")
    if not keep:
        return _outcome([], [], "US")
    masters = {str(k): str(v) for k, v in dict(context.get("masters", {})).items()}
    observation, rejections = outlook_calendar_mapping.map_event(record, masters)
    return _outcome(_one(observation), rejections, "US")


def outlook_contact(record: Any, context: Context) -> Outcome:
    """outlook_contacts.fetch_page: one contacts/delta item."""
    keep, removed = graph_item(record)
    if removed is not None:
        return _outcome([Deletion(outlook_contacts.name, removed)], [], str(context.get("region", "US")))
    if not keep:
        return _outcome([], [], "US")
    person, rejections = outlook_contacts.map_contact(record)
    return _outcome([person], rejections, str(context.get("region", "US")))


def salesforce(record: Any, context: Context) -> Outcome:
    """salesforce.fetch_page (`_map`): one query row of the stream (users, contacts, leads, tasks, events)."""
    stream = str(context.get("stream", "contacts"))
    out = salesforce_mapping.Mapped()
    if stream in SALESFORCE_PERSON_KINDS:
        salesforce_mapping.map_person(record, SALESFORCE_PERSON_KINDS[stream], out)
    elif stream == "tasks":
        salesforce_mapping.map_task(record, out)
    else:
        salesforce_mapping.map_event(record, out)
    return _outcome(out.observations, out.rejections, str(context.get("region", "US")))


def hubspot(record: Any, context: Context) -> Outcome:
    """hubspot_crm / hubspot_owners: one search or batch-read result of the stream, with its associations."""
    stream = str(context.get("stream", "contacts"))
    out = hubspot_mapping.Mapped()
    if stream == "owners":
        hubspot_mapping.map_owner(record, out)
    elif stream == "contacts":
        names = {str(k): str(v) for k, v in dict(context.get("company_names", {})).items()}
        hubspot_mapping.map_contact(record, names, out)
    else:
        contacts = [str(c) for c in context.get("contacts", ())]
        hubspot_mapping.map_engagement(hubspot_mapping.ENGAGEMENTS[stream], record, contacts, out)
    return _outcome(out.observations, out.rejections, str(context.get("region", "US")))


Mapper = Callable[[Any, Context], Outcome]
MAPPERS: dict[str, Mapper] = {
    "gmail": gmail,
    "google_calendar": google_calendar,
    "google_contacts": google_contacts,
    "outlook_mail": outlook_mail,
    "outlook_calendar": outlook_calendar,
    "outlook_contacts": outlook_contact,
    "salesforce": salesforce,
    "hubspot": hubspot,
}

_FOLD = re.compile(r"\r?\n(?=[ \t])")


def gmail_metadata(raw: bytes, message_id: str, internal_date: str, labels: list[str]) -> dict[str, Any]:
    """A raw RFC 5322 message as Gmail's format=metadata answer shows it: the asked-for headers, unfolded.

    Header values stay undecoded (encoded words and all), in message order, as Gmail returns them; raw
    8-bit header bytes are read as UTF-8 (what Gmail shows for SMTPUTF8 mail).
    """
    text = raw.decode("utf-8", errors="replace")
    parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text)
    wanted = {name.lower() for name in METADATA_HEADERS}
    headers = [
        {"name": name, "value": _FOLD.sub("", str(value)).strip()}
        for name, value in parsed.items()
        if name.lower() in wanted
    ]
    return {"id": message_id, "labelIds": labels, "internalDate": internal_date, "payload": {"headers": headers}}
