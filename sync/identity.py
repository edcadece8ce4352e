"""Which identity keys are one person: DESIGN.md's tie rules as a pure, order-independent function.

Keys are strings: "email:dana@globex.test", "ref:salesforce:003…", "phone:+14155550100".
A person record ties all its email and ref keys together. Phones are weaker: a record that has no
email joins the one person its phone points to; records that both carry emails never merge through
a phone (two people on one switchboard line). A key carried by more than `HUB_LIMIT` records (a
shared inbox such as info@) ties nothing: it is a conflict for ops, not a person.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HUB_LIMIT = 50


def email_key(email: str) -> str:
    """The key of an address."""
    return "email:" + email


def ref_key(ref: str) -> str:
    """The key of a source record id ("source:id")."""
    return "ref:" + ref


def is_user_ref(ref: str) -> bool:
    """A CRM user or owner ("salesforce:user:…", "hubspot:owner:…"): a person of the org, never a contact."""
    return ":user:" in ref or ":owner:" in ref


def phone_key(e164: str) -> str:
    """The key of an E.164 phone number."""
    return "phone:" + e164


def split_key(key: str) -> tuple[str, str]:
    """("email" | "ref" | "phone", value)."""
    kind, _, value = key.partition(":")
    return kind, value


@dataclass(frozen=True)
class RecordView:
    """What a person record contributes to the tie graph."""

    id: int
    keys: frozenset[str]  # email and ref keys (its own ref, merged-from refs)
    phones: frozenset[str]  # phone keys

    @property
    def has_email(self) -> bool:
        """Whether the record names any address."""
        return any(k.startswith("email:") for k in self.keys)


class _UnionFind:
    """Disjoint sets over keys; the representative is the smallest key (deterministic)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def add(self, key: str) -> None:
        self.parent.setdefault(key, key)

    def find(self, key: str) -> str:
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            low, high = sorted((ra, rb))
            self.parent[high] = low


def components(
    records: Sequence[RecordView], loose_keys: Iterable[str], hubs: frozenset[str] = frozenset()
) -> list[frozenset[str]]:
    """The people among the keys: each a set of email/ref keys (phones are attributes, not identities)."""
    uf = _UnionFind()
    for key in loose_keys:
        if not key.startswith("phone:"):
            uf.add(key)
    for record in records:
        tying = sorted(k for k in record.keys if k not in hubs)
        for key in record.keys:
            uf.add(key)
        for key in tying[1:]:
            uf.union(tying[0], key)
    _join_by_phone(uf, records, hubs)
    groups: dict[str, set[str]] = defaultdict(set)
    for key in uf.parent:
        groups[uf.find(key)].add(key)
    return sorted((frozenset(g) for g in groups.values()), key=min)


def _join_by_phone(uf: _UnionFind, records: Sequence[RecordView], hubs: frozenset[str]) -> None:
    """Records without an email join the single person their phones point to (decided before any join)."""
    with_email: dict[str, set[str]] = defaultdict(set)  # phone -> roots of email-bearing records
    for record in records:
        if record.has_email:
            anchor = _anchor(record, hubs)
            for phone in record.phones:
                with_email[phone].add(uf.find(anchor))
    joins: list[tuple[str, str]] = []
    phone_only: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record.has_email or not record.phones:
            continue
        anchor = _anchor(record, hubs)
        targets = set().union(*(with_email.get(p, set()) for p in record.phones))
        if len(targets) == 1:
            joins.append((anchor, next(iter(targets))))
        elif not targets:
            for phone in record.phones:
                phone_only[phone].append(anchor)
    for anchors in phone_only.values():
        joins.extend((anchors[0], other) for other in anchors[1:])
    for a, b in joins:
        uf.union(a, b)


def _anchor(record: RecordView, hubs: frozenset[str]) -> str:
    """A key that stands for the record in the union-find (its smallest non-hub key)."""
    tying = sorted(k for k in record.keys if k not in hubs)
    return tying[0] if tying else min(record.keys)
