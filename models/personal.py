"""Which columns hold personal data and how each is erased: the map opt-out, retention and export follow.

A test fails when a column whose name suggests personal data is neither registered here nor exempted
with a reason, so a new email/phone/name column cannot slip past erasure unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Erase(StrEnum):
    """How a column's personal data goes away."""

    DELETE_ROW = "delete_row"  # the row exists only because of the person: delete it
    NULL = "null"  # the row stays (it is someone else's too), the value is cleared
    SCRUB = "scrub"  # free text or a list: remove the identity from it, keep the rest


@dataclass(frozen=True)
class PersonalColumn:
    """One column that holds personal data, what kind, and how it is erased."""

    table: str
    column: str
    holds: str  # email | phone | name | identifier | free text
    erase: Erase


def _c(table: str, column: str, holds: str, erase: Erase) -> PersonalColumn:
    return PersonalColumn(table, column, holds, erase)


D, N, S = Erase.DELETE_ROW, Erase.NULL, Erase.SCRUB

REGISTRY: tuple[PersonalColumn, ...] = (
    _c("members", "email", "email", D),
    _c("connections", "account", "email", D),
    _c("connections", "last_error", "free text", N),
    _c("sync_states", "last_error", "free text", N),
    _c("activities", "subject", "free text", N),
    _c("participants", "email", "email", D),
    _c("participants", "name", "name", D),
    _c("participants", "person_ref", "identifier", D),
    _c("contacts", "name", "name", N),
    _c("person_records", "name", "name", D),
    _c("person_records", "emails", "email", S),
    _c("person_records", "phones", "phone", S),
    _c("person_records", "company", "free text", D),
    _c("person_records", "external_id", "identifier", D),
    _c("person_records", "ref", "identifier", D),
    _c("person_records", "merged_from", "identifier", S),
    _c("record_keys", "key", "email", D),
    _c("identity_conflicts", "key", "email", D),
    _c("identities", "value", "email", D),
    _c("rejected", "detail", "free text", D),
    _c("audit_events", "actor", "email", S),
    _c("audit_events", "target", "email", S),
    _c("audit_events", "details", "free text", S),
    _c("outbox", "recipient", "email", D),
    _c("outbox", "body", "free text", D),
)

EXEMPT: dict[tuple[str, str], str] = {
    ("orgs", "domains"): "the customer's internal domains, not a person",
    ("contacts", "name_rank"): "a number ranking where the name came from",
    ("contacts", "company_domain"): "a company's domain; free-mail domains are never stored here",
    ("contacts", "company"): "the employer's name as CRM records give it, kept only while such a record is",
    ("activities", "dedupe_key"): "a Message-ID / iCalUID / source record key, opaque to people",
    ("sightings", "external_id"): "a provider's message or event id, opaque",
    ("rejected", "external_id"): "a provider's record id, opaque; the row goes with its detail",
    ("api_keys", "key_hash"): "a hash of a random org credential, not a person",
    ("relationships", "email_in"): "a count of emails, not an address",
    ("relationships", "email_out"): "a count of emails, not an address",
    ("stored_secrets", "name"): "the label of a product secret (which key it is), not a person",
}


def registered(table: str, column: str) -> PersonalColumn | None:
    """The registry entry of a column, if it holds personal data."""
    return next((c for c in REGISTRY if (c.table, c.column) == (table, column)), None)


def personal_columns(table: str) -> list[PersonalColumn]:
    """A table's personal-data columns."""
    return [c for c in REGISTRY if c.table == table]
