"""Who is one person: DESIGN.md's identity ties over every record, and each person's name, company and phones.

Identities are keys: "email:<address>" and "ref:<source>:<id>" (a record's own id, and ids merged into
it). A record ties all its keys into one person; phones are attributes, never identities. Decisions
where DESIGN.md leaves room, each mirroring the product's documented behaviour (sync/identity.py,
sync/records.py, sync/contacts.py):

- A shared phone joins a record that carries no address to the one person (by address and id ties) whose
  records carry that phone; pointing at two people (a switchboard) it joins nobody; pointing at nobody,
  the address-less records on that phone are one person.
- Users (CRM owners) and entries listing only the org's own addresses tie nothing: not contacts.
- Name: the most frequent record name over the person's records (a CRM record counts once per connection
  that reads it), else the most frequent display name over the person's addresses in every stored copy
  (each (copy, role, address) once, noise included); ties go to the smallest. No name -> None.
- company_domain: the first non-free-mail domain among the person's addresses, sorted.
- company: the most frequent CRM account name (Salesforce account or lead company, HubSpot company) over
  the person's CRM records, ties to the smallest; compared only when the store exposes one.
- phones: every valid number of the person's records.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sync.freemail import FREE_MAIL_DOMAINS
from tests.e2e.oracle import is_external
from tests.e2e.oracle_model import Copy, Record

HUB_LIMIT = 50  # a key on more records ties nothing (sync/identity.py); the oracle insists none is that big
CRM_SOURCES = ("salesforce", "hubspot")


@dataclass(frozen=True)
class RecordTies:
    """What one record contributes: identity keys and phone numbers."""

    record: Record
    keys: frozenset[str]
    phones: frozenset[str]


def record_ties(record: Record, members: frozenset[str], domains: frozenset[str]) -> RecordTies:
    """The keys a record ties (none for users and for entries naming only the org's own people)."""
    external = {e for e in record.emails if is_external(e, members, domains)}
    if record.kind == "user" or (record.emails and not external):
        return RecordTies(record, frozenset(), frozenset())
    keys = {f"email:{e}" for e in external} | {f"ref:{record.ref}"} | {f"ref:{m}" for m in record.merged_from}
    return RecordTies(record, frozenset(keys), frozenset(record.phones))


class _Sets:
    """Disjoint sets of keys."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def add(self, key: str) -> None:
        self.parent.setdefault(key, key)

    def find(self, key: str) -> str:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def people(ties: Sequence[RecordTies], loose: Iterable[str]) -> list[frozenset[str]]:
    """The persons among the records' keys and the activities' loose keys."""
    counts: Counter[str] = Counter()
    for tie in ties:
        counts.update(dict.fromkeys(tie.keys, tie.record.holders))
    hubs = {k: n for k, n in counts.items() if n > HUB_LIMIT}
    assert not hubs, f"the world has hub keys the oracle does not model: {hubs}"
    sets = _Sets()
    for key in loose:
        sets.add(key)
    for tie in ties:
        ordered = sorted(tie.keys)
        for key in ordered:
            sets.add(key)
            sets.join(key, ordered[0])
    with_address: dict[str, set[str]] = defaultdict(set)  # phone -> persons whose addressed records carry it
    for tie in ties:
        if any(k.startswith("email:") for k in tie.keys):
            for phone in tie.phones:
                with_address[phone].add(sets.find(min(tie.keys)))
    joins: list[tuple[str, str]] = []
    unclaimed: dict[str, list[str]] = defaultdict(list)  # phone -> address-less records pointing at nobody
    for tie in ties:
        if not tie.keys or any(k.startswith("email:") for k in tie.keys) or not tie.phones:
            continue
        targets = set().union(*(with_address.get(p, set()) for p in tie.phones))
        if len(targets) == 1:
            joins.append((min(tie.keys), targets.pop()))
        elif not targets:
            for phone in tie.phones:
                unclaimed[phone].append(min(tie.keys))
    for anchors in unclaimed.values():
        joins += [(anchors[0], other) for other in anchors[1:]]
    for a, b in joins:
        sets.join(a, b)
    groups: dict[str, set[str]] = defaultdict(set)
    for key in sets.parent:
        groups[sets.find(key)].add(key)
    return [frozenset(g) for g in groups.values()]


def best(counts: Counter[str]) -> str | None:
    """The most frequent value; ties go to the smallest."""
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0] if counts else None


@dataclass(frozen=True)
class Profile:
    """What the store shows of a person beside its identities."""

    name: str | None
    company_domain: str | None
    company: str | None
    phones: frozenset[str]


class Profiles:
    """Names, companies and phones of persons, from the records and the stored copies."""

    def __init__(self, ties: Sequence[RecordTies], copies: Iterable[Copy]) -> None:
        self.records: dict[str, list[Record]] = defaultdict(list)
        for tie in ties:
            if tie.keys:
                self.records[f"ref:{tie.record.ref}"].append(tie.record)
        self.mail_names: dict[str, Counter[str]] = defaultdict(Counter)
        for copy in copies:
            for party in copy.parties:
                if party.name and not party.who.startswith("ref:"):
                    self.mail_names[party.who][party.name] += 1

    def profile(self, keys: frozenset[str]) -> Profile:
        records = [r for k in sorted(keys) for r in self.records.get(k, ())]
        emails = sorted(k.removeprefix("email:") for k in keys if k.startswith("email:"))
        record_names: Counter[str] = Counter()
        companies: Counter[str] = Counter()
        for record in records:
            if record.name:
                record_names[record.name] += record.holders
            if record.company and record.ref.startswith(CRM_SOURCES):
                companies[record.company] += record.holders
        mail_names: Counter[str] = Counter()
        for email in emails:
            mail_names.update(self.mail_names.get(email, Counter()))
        domains = [e.rpartition("@")[2] for e in emails]
        return Profile(
            best(record_names) or best(mail_names),
            next((d for d in domains if d not in FREE_MAIL_DOMAINS), None),
            best(companies),
            frozenset(p for r in records for p in r.phones),
        )
