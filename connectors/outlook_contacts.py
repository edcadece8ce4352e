"""Outlook contacts as a source: /me/contacts/delta (stream `contacts`) under Contacts.Read.

Each contact is a PersonObservation tying its email addresses into one person; phones are passed
raw (business, mobile, home) for the sync layer to normalize with the org's region. Cursor: see
connectors.graph_delta.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import (
    JSON,
    ConnectorError,
    Deletion,
    FetchContext,
    Observation,
    Page,
    PersonObservation,
    Rejection,
)
from connectors.emails import InvalidAddress, normalize_email
from connectors.graph_delta import fetch_delta
from connectors.graph_http import me_address, open_graph

name: str = "outlook_contacts"
provider: str = "microsoft"
streams: tuple[str, ...] = ("contacts",)
scopes: tuple[str, ...] = ("Contacts.Read", "User.Read")


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _list(value: Any) -> list[Any]:
    """A collection property as a list: a lone string is one value, anything else not a list is none."""
    return value if isinstance(value, list) else [value] if isinstance(value, str) else []


def map_contact(contact: Mapping[str, Any]) -> tuple[PersonObservation, list[Rejection]]:
    """One Graph contact to a PersonObservation; an unusable address is a rejection beside the rest."""
    contact_id = str(contact["id"])
    emails: list[str] = []
    rejections: list[Rejection] = []
    for entry in _list(contact.get("emailAddresses")):
        raw = str(entry.get("address") or "") if isinstance(entry, dict) else ""
        try:
            email = normalize_email(raw)
        except InvalidAddress as exc:
            rejections.append(Rejection(name, contact_id, exc.reason, f"emailAddresses: {raw[:120]}"))
            continue
        if email not in emails:
            emails.append(email)
    phones = [*_list(contact.get("businessPhones")), contact.get("mobilePhone"), *_list(contact.get("homePhones"))]
    raw_phones = tuple(dict.fromkeys(p.strip() for p in phones if isinstance(p, str) and p.strip()))
    full_name = _text(contact.get("displayName")) or _text(
        " ".join(filter(None, (_text(contact.get("givenName")), _text(contact.get("surname")))))
    )
    person = PersonObservation(
        source=name,
        external_id=contact_id,
        name=full_name,
        emails=tuple(emails),
        phones=raw_phones,
        company=_text(contact.get("companyName")),
        kind="contact",
    )
    return person, rejections


def fetch_page(stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` (None starts a full pass)."""
    if stream not in streams:
        raise ConnectorError(f"outlook_contacts has no stream {stream!r}; it has {streams}")
    client = open_graph(ctx)
    try:
        delta = fetch_delta(client, cursor, ("me/contacts/delta", {}), "graph contacts/delta")
    finally:
        client.close()
    observations: list[Observation] = [Deletion(name, i) for i in delta.removed]
    rejections: list[Rejection] = delta.rejected(name)
    for contact in delta.items:
        person, rejected = map_contact(contact)
        observations.append(person)
        rejections.extend(rejected)
    return Page(observations, rejections, delta.cursor, delta.done, client.calls, delta.full_resync)


def whoami(ctx: FetchContext) -> str:
    """The address book owner's address from GET /me, normalized."""
    return me_address(ctx)
