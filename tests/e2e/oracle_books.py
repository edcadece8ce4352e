"""Address-book records as the Google People and Outlook contacts emulators serve them.

Decisions where DESIGN.md leaves room, each mirroring the product's documented behaviour
(connectors/people_mapping.py, connectors/outlook_contacts.py): an entry's name is its display name
(Outlook: else given name and surname), its company its first organization (Google "other contacts"
have none); an entry with no usable address and no phone at all ties nothing and is not a record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sandbox.people_store import PeopleStore
from tests.e2e.oracle import normalize_address
from tests.e2e.oracle_model import Record, phones_of

KINDS = {"connections": "contact", "other": "other_contact"}


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _emails(values: Iterable[object]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for value in values:
        email = normalize_address(value) if isinstance(value, str) else None
        if email is not None:
            found[email] = None
    return tuple(found)


def google_records(store: PeopleStore, members: Sequence[str]) -> list[Record]:
    """Each connected rep's address book and other contacts."""
    out: list[Record] = []
    for (member, book), entries in store.books.items():
        if member not in members:
            continue
        for entry in entries.values():
            emails = _emails(entry.emails)
            if entry.deleted or not (emails or any(p.strip() for p in entry.phones)):
                continue
            company = _text(entry.company) if book == "connections" else None
            ref = f"google_contacts:{entry.resource_name}"
            out.append(Record(ref, KINDS[book], _text(entry.name), emails, phones_of(entry.phones), company))
    return out


def outlook_records(books: Mapping[str, Iterable[Mapping[str, Any]]]) -> list[Record]:
    """Each connected rep's Outlook contacts ({rep: contacts})."""
    out: list[Record] = []
    for contacts in books.values():
        for contact in contacts:
            emails = _emails((e or {}).get("address") for e in contact.get("emailAddresses") or ())
            phones = [*(contact.get("businessPhones") or ()), contact.get("mobilePhone")]
            phones += list(contact.get("homePhones") or ())
            given = " ".join(p for p in (_text(contact.get("givenName")), _text(contact.get("surname"))) if p)
            name = _text(contact.get("displayName")) or _text(given)
            ref = f"outlook_contacts:{contact['id']}"
            out.append(Record(ref, "contact", name, emails, phones_of(phones), _text(contact.get("companyName"))))
    return out
