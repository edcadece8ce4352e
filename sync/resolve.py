"""Re-derive which contact each identity belongs to, around the keys a change touched.

The neighbourhood of the touched keys (their contacts' other identities, the records that carry
them, transitively, stopping at hub keys) is re-partitioned with `sync.identity.components`. Each
person keeps the oldest contact id among its identities (merges: the older id survives, the others
become `merged` tombstones the feed reports); a split gives the pieces their identities' original
contacts back, so splitting is deterministic too. Keys nothing evidences any more are dropped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from models.store import bulk_insert, insert_ignore
from models.tables import Activity, Contact, Identity, IdentityConflict, Participant, RecordKey
from sync.freemail import company_domain
from sync.identity import HUB_LIMIT, RecordView, components, split_key

log = logging.getLogger("sxsync.resolve")
T = TypeVar("T")
MAX_NEIGHBOURHOOD = 20_000  # keys; beyond this the walk stops (reported) rather than eat the worker


@dataclass
class Known:
    """An identity row as the neighbourhood walk found it."""

    id: int
    contact_id: int
    origin: int | None


@dataclass
class Neighbourhood:
    """Everything a re-partition needs to see."""

    keys: set[str] = field(default_factory=set)
    records: dict[int, RecordView] = field(default_factory=dict)
    hubs: set[str] = field(default_factory=set)
    identities: dict[str, Known] = field(default_factory=dict)
    contacts: set[int] = field(default_factory=set)


def chunks(items: Iterable[T], size: int = 500) -> Iterable[list[T]]:
    """Bounded IN lists (SQLite caps bound parameters)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _identity_rows(session: Session, org_id: int, keys: Iterable[str]) -> dict[str, Known]:
    """Identity rows for email/ref keys."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        kind, value = split_key(key)
        if kind in ("email", "ref"):
            by_kind[kind].append(value)
    found: dict[str, Known] = {}
    for kind, values in by_kind.items():
        for batch in chunks(values):
            for ident_id, value, contact_id, origin in session.execute(
                select(Identity.id, Identity.value, Identity.contact_id, Identity.origin_contact_id).where(
                    Identity.org_id == org_id, Identity.kind == kind, Identity.value.in_(batch)
                )
            ):
                found[f"{kind}:{value}"] = Known(ident_id, contact_id, origin)
    return found


def neighbourhood(session: Session, org_id: int, seeds: set[str]) -> Neighbourhood:
    """Walk identities ↔ contacts and keys ↔ records from the seeds, not through hub keys."""
    hood = Neighbourhood(keys=set(seeds))
    frontier = set(seeds)
    while frontier and len(hood.keys) < MAX_NEIGHBOURHOOD:
        fresh: set[str] = set()
        found = _identity_rows(session, org_id, frontier)
        hood.identities.update(found)
        new_contacts = {k.contact_id for k in found.values()} - hood.contacts
        hood.contacts |= new_contacts
        for batch in chunks(sorted(new_contacts)):
            for ident_id, kind, value, contact_id, origin in session.execute(
                select(
                    Identity.id, Identity.kind, Identity.value, Identity.contact_id, Identity.origin_contact_id
                ).where(Identity.contact_id.in_(batch))
            ):
                key = f"{kind}:{value}"
                hood.identities[key] = Known(ident_id, contact_id, origin)
                fresh.add(key)
        fresh |= _records_around(session, org_id, frontier, hood)
        frontier = fresh - hood.keys
        hood.keys |= frontier
    if frontier:
        log.warning("identity neighbourhood truncated", extra={"org": org_id, "keys": len(hood.keys)})
    return hood


def _records_around(session: Session, org_id: int, frontier: set[str], hood: Neighbourhood) -> set[str]:
    """Records carrying frontier keys (hubs excluded) and the keys those records carry."""
    counts: dict[str, int] = {}
    for batch in chunks(sorted(frontier)):
        counts.update(
            {
                key: int(n)
                for key, n in session.execute(
                    select(RecordKey.key, func.count())
                    .where(RecordKey.org_id == org_id, RecordKey.key.in_(batch))
                    .group_by(RecordKey.key)
                )
            }
        )
    hubs = {k for k, n in counts.items() if n > HUB_LIMIT}
    if hubs - hood.hubs:
        _report_hubs(session, org_id, {k: counts[k] for k in hubs - hood.hubs})
    hood.hubs |= hubs
    expand = [k for k in counts if k not in hubs]
    record_ids: set[int] = set()
    for batch in chunks(sorted(expand)):
        record_ids.update(
            session.execute(
                select(RecordKey.record_id).where(RecordKey.org_id == org_id, RecordKey.key.in_(batch))
            ).scalars()
        )
    new_ids = sorted(record_ids - set(hood.records))
    keys_of: dict[int, set[str]] = defaultdict(set)
    for id_batch in chunks(new_ids):
        for record_id, key in session.execute(
            select(RecordKey.record_id, RecordKey.key).where(RecordKey.record_id.in_(id_batch))
        ):
            keys_of[record_id].add(key)
    carried: set[str] = set()
    for record_id in new_ids:
        keys = keys_of[record_id]
        hood.records[record_id] = RecordView(
            record_id,
            frozenset(k for k in keys if not k.startswith("phone:")),
            frozenset(k for k in keys if k.startswith("phone:")),
        )
        carried |= keys
    return carried


def _report_hubs(session: Session, org_id: int, hubs: dict[str, int]) -> None:
    """A key on more than HUB_LIMIT records ties nothing; ops see it as a conflict."""
    insert_ignore(
        session,
        IdentityConflict,
        [{"org_id": org_id, "key": k[:340], "records": n} for k, n in sorted(hubs.items())],
        ["org_id", "key"],
    )


def evidenced(session: Session, org_id: int, keys: set[str]) -> set[str]:
    """Keys that a person record or a non-noise activity still vouches for."""
    found: set[str] = set()
    for batch in chunks(sorted(keys)):
        found.update(
            session.execute(
                select(RecordKey.key).where(RecordKey.org_id == org_id, RecordKey.key.in_(batch)).distinct()
            ).scalars()
        )
    emails = [split_key(k)[1] for k in keys if k.startswith("email:") and k not in found]
    refs = [split_key(k)[1] for k in keys if k.startswith("ref:") and k not in found]
    for column, values, prefix in ((Participant.email, emails, "email:"), (Participant.person_ref, refs, "ref:")):
        for batch in chunks(values):
            found.update(
                prefix + str(v)
                for v in session.execute(
                    select(column)
                    .join(Activity, Activity.id == Participant.activity_id)
                    .where(Participant.org_id == org_id, column.in_(batch), Activity.noise.is_(None))
                    .distinct()
                ).scalars()
            )
    return found


def resolve(session: Session, org_id: int, seeds: set[str], created: set[int]) -> set[int]:
    """Re-partition the seeds' neighbourhood; return the contacts whose identities changed."""
    seeds = {k for k in seeds if not k.startswith("phone:")}
    if not seeds:
        return set()
    hood = neighbourhood(session, org_id, seeds)
    alive = evidenced(session, org_id, hood.keys)
    simple = not hood.records and all(_single(hood, k) for k in seeds if k in hood.identities)
    if simple and all(k in hood.identities for k in seeds) and hood.keys <= alive:
        return set()  # nothing ties, nothing new, nothing lost: the common page
    people = [c & alive for c in components(list(hood.records.values()), hood.keys, frozenset(hood.hubs))]
    people = [p for p in people if p]
    return _apply(session, org_id, hood, people, created)


def _single(hood: Neighbourhood, key: str) -> bool:
    """The key's contact has no other identity in view (the common case of a mail-only address)."""
    contact = hood.identities[key].contact_id
    return sum(1 for k in hood.identities.values() if k.contact_id == contact) == 1


def _apply(
    session: Session, org_id: int, hood: Neighbourhood, people: list[frozenset[str]], created: set[int]
) -> set[int]:
    """Write the partition: contact per person (oldest id wins), identities moved, tombstones."""
    origins = {k.origin for k in hood.identities.values() if k.origin is not None}
    free = _free_contacts(session, origins - hood.contacts)

    def order(person: frozenset[str]) -> tuple[int, str]:
        ids = [hood.identities[k].id for k in person if k in hood.identities]
        return (min(ids) if ids else 1 << 62, min(person))

    taken: set[int] = set()
    chosen_for: dict[str, int] = {}
    changed: set[int] = set()
    for person in sorted(people, key=order):
        candidates = {hood.identities[k].contact_id for k in person if k in hood.identities}
        candidates |= {o for k in person if k in hood.identities and (o := hood.identities[k].origin) in free}
        chosen = next((c for c in sorted(candidates) if c not in taken), None)
        if chosen is None:
            chosen = _new_contact(session, org_id, person)
            created.add(chosen)
        taken.add(chosen)
        for key in person:
            chosen_for[key] = chosen
        before = {k for k, v in hood.identities.items() if v.contact_id == chosen}
        if before != set(person):
            changed.add(chosen)
    _move_identities(session, org_id, hood, chosen_for)
    changed |= _retire(session, hood, chosen_for, taken, created)
    if taken & (free | hood.contacts):
        session.execute(
            update(Contact)
            .where(Contact.id.in_(sorted(taken)), Contact.status != "active")
            .values(status="active", merged_into=None)
        )
    return changed


def _free_contacts(session: Session, ids: set[int]) -> set[int]:
    """Of these original contacts, the ones no identity uses now (merged or deleted): a split may revive them."""
    wanted = sorted(ids)
    free: set[int] = set()
    for batch in chunks(wanted):
        free.update(
            session.execute(select(Contact.id).where(Contact.id.in_(batch), Contact.status != "active")).scalars()
        )
    return free


def _new_contact(session: Session, org_id: int, person: frozenset[str]) -> int:
    """A contact for a person none of whose identities had one."""
    emails = sorted(split_key(k)[1] for k in person if k.startswith("email:"))
    domain = next((d for d in (company_domain(e) for e in emails) if d), None)
    return int(
        session.execute(
            bulk_insert(Contact).returning(Contact.id), [{"org_id": org_id, "company_domain": domain}]
        ).scalar_one()
    )


def _move_identities(session: Session, org_id: int, hood: Neighbourhood, chosen_for: dict[str, int]) -> None:
    """Point identities at their person's contact; create new ones; drop the unevidenced."""
    moves: dict[int, list[int]] = defaultdict(list)
    for key, contact in chosen_for.items():
        known = hood.identities.get(key)
        if known is not None and known.contact_id != contact:
            moves[contact].append(known.id)
    for contact, ids in moves.items():
        for batch in chunks(ids):
            session.execute(update(Identity).where(Identity.id.in_(batch)).values(contact_id=contact))
    fresh = [
        {"org_id": org_id, "kind": split_key(k)[0], "value": split_key(k)[1], "contact_id": c, "origin_contact_id": c}
        for k, c in sorted(chosen_for.items())
        if k not in hood.identities
    ]
    if fresh:
        session.execute(bulk_insert(Identity), fresh)
    dropped = [v.id for k, v in hood.identities.items() if k not in chosen_for]
    for batch in chunks(dropped):
        session.execute(delete(Identity).where(Identity.id.in_(batch)))


def _retire(
    session: Session, hood: Neighbourhood, chosen_for: dict[str, int], taken: set[int], created: set[int]
) -> set[int]:
    """Contacts no person kept: merged into where their identities went, else deleted."""
    retired: set[int] = set()
    for contact in sorted(hood.contacts - taken):
        targets = sorted(
            {chosen_for[k] for k, v in hood.identities.items() if v.contact_id == contact and k in chosen_for}
        )
        if contact in created:
            session.execute(delete(Contact).where(Contact.id == contact))
            created.discard(contact)
            continue
        values = (
            {"status": "merged", "merged_into": targets[0]}
            if targets
            else {"status": "deleted", "merged_into": None, "name": None, "company_domain": None}
        )
        session.execute(update(Contact).where(Contact.id == contact).values(**values))
        session.execute(
            update(Contact)
            .where(Contact.merged_into == contact, Contact.status == "merged")
            .values(merged_into=targets[0] if targets else None, status="merged" if targets else "deleted")
        )
        retired.add(contact)
    return retired
