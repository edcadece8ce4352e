"""The store's whole network read back (contacts, identities, merges, activities) and compared with the oracle.

Contacts are matched to the oracle's persons by their identity sets (every email and record-id identity the
store holds), so the comparison never depends on contact ids, which follow arrival order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from models.network import get_contact, iter_contacts
from models.tables import Identity
from tests.e2e.helpers import activity_counts, org_id
from tests.e2e.oracle_model import iso_z
from tests.e2e.oracle_sources import KINDS, Network, Person
from web.stack import Stack

STRENGTH_TOLERANCE = 2e-6  # the API rounds strengths to 6 decimals


@dataclass(frozen=True)
class StoredContact:
    """One active contact as `sxsync contacts --json` prints it, with its identity keys."""

    keys: frozenset[str]
    body: dict[str, Any]


def stored_contacts(stack: Stack) -> list[StoredContact]:
    """Every active contact of the org and the "email:…"/"ref:…" identities it holds."""
    oid = org_id(stack)
    with stack.rt.sessions() as session:
        contacts = list(iter_contacts(session, oid))
        keys: dict[str, set[str]] = {}
        for contact_id, kind, value in session.execute(
            select(Identity.contact_id, Identity.kind, Identity.value).where(Identity.org_id == oid)
        ):
            keys.setdefault(str(contact_id), set()).add(f"{kind}:{value}")
    return [StoredContact(frozenset(keys.get(c["id"], ())), c) for c in contacts]


def _label(keys: frozenset[str]) -> str:
    emails = sorted(k for k in keys if k.startswith("email:"))
    return ",".join(emails or sorted(keys))[:160]


def _tie_differences(label: str, got: dict[str, Any], want: Person, network: Network) -> list[str]:
    problems: list[str] = []
    ties = {rel["member"]: rel for rel in got["relationships"]}
    if set(ties) != set(want.ties):
        problems.append(f"{label}: relationships with {sorted(ties)}, expected {sorted(want.ties)}")
    for member in sorted(set(ties) & set(want.ties)):
        rel, tie = ties[member], want.ties[member]
        expected = (tie.counts(), iso_z(tie.first_at()), iso_z(tie.last_at()))
        actual = ({k: rel["interactions"].get(k) for k in KINDS}, rel["first_at"], rel["last_at"])
        if actual != expected:
            problems.append(f"{label}/{member}: (interactions, first, last) {actual}, expected {expected}")
        strength = tie.strength(network.now)
        if not math.isclose(rel["strength"], strength, abs_tol=STRENGTH_TOLERANCE):
            problems.append(f"{label}/{member}: strength {rel['strength']}, expected {strength:.6f}")
    return problems


def contact_differences(stored: list[StoredContact], network: Network) -> list[str]:
    """Human-readable differences between the store's contacts and the oracle's persons (empty: equal)."""
    problems: list[str] = []
    by_keys = {c.keys: c for c in stored}
    expected = {p.keys: p for p in network.people}
    for keys in sorted(set(expected) - set(by_keys), key=sorted):
        near = sorted({_label(c.keys) for c in stored if c.keys & keys})
        problems.append(f"missing contact {sorted(keys)} (store has it as: {near or 'nothing'})")
    for keys in sorted(set(by_keys) - set(expected), key=sorted):
        problems.append(f"unexpected contact {sorted(keys)} (id {by_keys[keys].body['id']})")
    for keys in sorted(set(expected) & set(by_keys), key=sorted):
        got, want, label = by_keys[keys].body, expected[keys], _label(keys)
        profile = want.profile
        if got["emails"] != want.emails:
            problems.append(f"{label}: emails {got['emails']}, expected {want.emails}")
        if got["name"] != profile.name:
            problems.append(f"{label}: name {got['name']!r}, expected {profile.name!r}")
        if got["company_domain"] != profile.company_domain:
            problems.append(f"{label}: company_domain {got['company_domain']!r}, expected {profile.company_domain!r}")
        if "company" in got and got["company"] != profile.company:
            problems.append(f"{label}: company {got['company']!r}, expected {profile.company!r}")
        if set(got["phones"]) != profile.phones:
            problems.append(f"{label}: phones {sorted(got['phones'])}, expected {sorted(profile.phones)}")
        problems += _tie_differences(label, got, want, network)
    return problems


def merge_differences(stack: Stack, stored: list[StoredContact], network: Network) -> list[str]:
    """Every CRM merge lands in its winner's contact; every merged id the store lists leads to its contact."""
    problems: list[str] = []
    holder = {key: c for c in stored for key in c.keys}
    for loser, winner in sorted(network.merges.items()):
        a, b = holder.get(f"ref:{loser}"), holder.get(f"ref:{winner}")
        if a is None or a is not b:
            problems.append(f"merged record {loser} is not in the contact of {winner}")
    oid = org_id(stack)
    with stack.rt.sessions() as session:
        for contact in stored:
            for merged in contact.body["merged_ids"]:
                followed = get_contact(session, oid, int(merged))
                if followed is None or followed["id"] != contact.body["id"]:
                    problems.append(f"merged id {merged} of contact {contact.body['id']} leads to {followed}")
                elif len(contact.keys) < 2:
                    problems.append(f"contact {contact.body['id']} lists merged ids with one identity")
    return problems


def network_problems(stack: Stack, network: Network) -> list[str]:
    """Everything that differs between the store and the oracle."""
    stored = stored_contacts(stack)
    problems = contact_differences(stored, network) + merge_differences(stack, stored, network)
    total, noise = activity_counts(stack)
    if (total, noise) != (len(network.activities), len(network.noise)):
        problems.append(
            f"(activities, noise) ({total}, {noise}), expected ({len(network.activities)}, {len(network.noise)})"
        )
    return problems
