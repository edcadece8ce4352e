"""A People v1 Person (a contact or an "other contact") into one PersonObservation or a Deletion.

Emails are normalized (a broken one is a Rejection while the rest of the record goes on), phones stay
raw (the sync layer reads them with the org's region), the company is the first organization's name.
A record that names no usable email nor phone ties no identity: it is withdrawn (Deletion) and noted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Deletion, Observation, PersonObservation, Rejection
from connectors.emails import InvalidAddress, normalize_email

SOURCE = "google_contacts"


@dataclass(frozen=True)
class Mapped:
    """What one person gave: an observation (None when unusable) and rejections."""

    observation: Observation | None
    rejections: list[Rejection] = field(default_factory=list)


def _values(person: Mapping[str, Any], key: str, attribute: str) -> list[str]:
    """The string `attribute` of each entry of a repeated field (emailAddresses, phoneNumbers, …)."""
    entries = person.get(key)
    if not isinstance(entries, list):
        return []
    return [str(e[attribute]).strip() for e in entries if isinstance(e, Mapping) and isinstance(e.get(attribute), str)]


def _name(person: Mapping[str, Any]) -> str | None:
    """The primary name's display name (else the first one's)."""
    raw = person.get("names")
    entries = raw if isinstance(raw, list) else []
    names = [n for n in entries if isinstance(n, Mapping) and isinstance(n.get("displayName"), str)]
    primary = [n for n in names if isinstance(n.get("metadata"), Mapping) and n["metadata"].get("primary")]
    for entry in (primary or names)[:1]:
        return str(entry["displayName"]).strip() or None
    return None


def map_person(person: Mapping[str, Any], kind: str) -> Mapped:
    """One connections/otherContacts item (kind "contact" or "other_contact")."""
    resource_name = person.get("resourceName")
    if not isinstance(resource_name, str) or not resource_name:
        return Mapped(None, [Rejection(SOURCE, "", "no_id", "person without a resourceName")])
    metadata = person.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("deleted"):
        return Mapped(Deletion(SOURCE, resource_name))
    rejections: list[Rejection] = []
    emails: list[str] = []
    for raw in _values(person, "emailAddresses", "value"):
        try:
            emails.append(normalize_email(raw))
        except InvalidAddress as exc:
            rejections.append(Rejection(SOURCE, resource_name, exc.reason, f"email: {raw[:120]}"))
    phones = [p for p in _values(person, "phoneNumbers", "value") if p]
    if not emails and not phones:
        rejections.append(Rejection(SOURCE, resource_name, "no_identity", "no usable email address or phone number"))
        return Mapped(Deletion(SOURCE, resource_name), rejections)
    companies = [c for c in _values(person, "organizations", "name") if c]
    observation = PersonObservation(
        source=SOURCE,
        external_id=resource_name,
        name=_name(person),
        emails=tuple(dict.fromkeys(emails)),
        phones=tuple(dict.fromkeys(phones)),
        company=companies[0] if companies else None,
        kind=kind,
    )
    return Mapped(observation, rejections)
