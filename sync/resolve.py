"""Re-derive which contact each identity belongs to, around the keys a change touched.

The neighbourhood of the touched keys (their contacts' other identities, the records that carry
them, transitively, stopping at hub keys) is re-partitioned with `sync.identity.components`. Each
person keeps the oldest contact id among its identities (merges: the older id survives, the others
become `merged` tombstones the feed reports); a split gives the pieces their identities' original
contacts back, so splitting is deterministic too. Keys nothing evidences any more are dropped.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, cast

from sqlalchemy import BigInteger, Select, Table, case, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session

from models.store import among, bulk_update, core, insert_ignore, insert_rows, insert_with_ids
from models.tables import Activity, Contact, Identity, IdentityConflict, Participant, RecordKey
from sync.freemail import company_domain
from sync.identity import HUB_LIMIT, RecordView, components, split_key

ACTIVITIES = core(Activity)
CONTACTS = core(Contact)
IDENTITIES = core(Identity)
PARTICIPANTS = core(Participant)
RECORD_KEYS = core(RecordKey)

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
    counted: dict[str, int] = field(default_factory=dict)  # keys whose records were counted: how many


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


def among_batches(session: Session, items: Iterable[T]) -> Iterable[list[T]]:
    """Batches for `among` lookups: IN lists of 500 on SQLite, arrays of up to 20,000 on PostgreSQL.

    While the planner's statistics lag a young org's growth, PostgreSQL answers a lookup by scanning the org's
    rows with the array hashed (~1.5 ms at 14,000 rows, whatever the array's length): one large array scans once.
    """
    return chunks(items, 20_000 if session.get_bind().dialect.name == "postgresql" else 500)


def identity_rows(session: Session, org_id: int, keys: Iterable[str]) -> dict[str, Known]:
    """This org's identity rows of email/ref keys (phones are attributes, never identities)."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        kind, value = split_key(key)
        if kind in ("email", "ref"):
            by_kind[kind].append(value)
    found: dict[str, Known] = {}
    for kind, values in by_kind.items():
        for batch in among_batches(session, values):
            for ident_id, value, contact_id, origin in session.execute(
                select(
                    IDENTITIES.c.id, IDENTITIES.c.value, IDENTITIES.c.contact_id, IDENTITIES.c.origin_contact_id
                ).where(
                    IDENTITIES.c.org_id == org_id, IDENTITIES.c.kind == kind, among(session, IDENTITIES.c.value, batch)
                )
            ):
                found[f"{kind}:{value}"] = Known(ident_id, contact_id, origin)
    return found


@dataclass(frozen=True)
class Prior:
    """What the caller learnt earlier in the transaction, so the walk need not read it again."""

    vouched: Collection[str] = ()  # keys known to be evidenced
    identities: Mapping[str, Known] = field(default_factory=dict)  # identity rows read or written
    sole: Collection[int] = ()  # contacts whose only identity is among those (just created)


def neighbourhood(session: Session, org_id: int, seeds: set[str], prior: Prior | None = None) -> Neighbourhood:
    """Walk identities ↔ contacts and keys ↔ records from the seeds, not through hub keys."""
    prior = prior or Prior()
    hood = Neighbourhood(keys=set(seeds))
    frontier = set(seeds)
    while frontier and len(hood.keys) < MAX_NEIGHBOURHOOD:
        fresh: set[str] = set()
        known = {**hood.identities, **prior.identities}  # rows read or written already (their contacts' walk)
        found = identity_rows(session, org_id, (k for k in frontier if k not in known))
        found.update((k, known[k]) for k in frontier if k in known)
        hood.identities.update(found)
        new_contacts = {k.contact_id for k in found.values()} - hood.contacts
        hood.contacts |= new_contacts
        for batch in among_batches(session, sorted(new_contacts.difference(prior.sole))):
            for ident_id, kind, value, contact_id, origin in session.execute(
                select(
                    IDENTITIES.c.id,
                    IDENTITIES.c.kind,
                    IDENTITIES.c.value,
                    IDENTITIES.c.contact_id,
                    IDENTITIES.c.origin_contact_id,
                ).where(among(session, IDENTITIES.c.contact_id, batch))
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
    """Records carrying frontier keys (hubs excluded) and the keys those records carry.

    One query a batch reads each key's records with its record count (a hub's count alone, not its records).
    """
    counts = dict.fromkeys(frontier, 0)
    record_ids: set[int] = set()
    for batch in among_batches(session, sorted(frontier)):
        for key, record_id, n in session.execute(_carriers(session, org_id, batch)):
            counts[key] = int(n)
            if n <= HUB_LIMIT:
                record_ids.add(record_id)
    hood.counted.update(counts)
    hubs = {k for k, n in counts.items() if n > HUB_LIMIT}
    if hubs - hood.hubs:
        _report_hubs(session, org_id, {k: counts[k] for k in hubs - hood.hubs})
    hood.hubs |= hubs
    new_ids = sorted(record_ids - set(hood.records))
    keys_of: dict[int, set[str]] = defaultdict(set)
    for id_batch in among_batches(session, new_ids):
        for record_id, key in session.execute(
            select(RECORD_KEYS.c.record_id, RECORD_KEYS.c.key).where(among(session, RECORD_KEYS.c.record_id, id_batch))
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


def _carriers(session: Session, org_id: int, keys: list[str]) -> Select[str, int, int]:
    """(key, record id, the key's record count) of the records carrying the keys; one row for a hub key."""
    rows = (
        select(
            RECORD_KEYS.c.key,
            RECORD_KEYS.c.record_id,
            func.count().over(partition_by=RECORD_KEYS.c.key).label("n"),
            func.row_number().over(partition_by=RECORD_KEYS.c.key).label("i"),
        )
        .where(RECORD_KEYS.c.org_id == org_id, among(session, RECORD_KEYS.c.key, keys))
        .subquery()
    )
    return select(rows.c.key, rows.c.record_id, rows.c.n).where(or_(rows.c.n <= HUB_LIMIT, rows.c.i == 1))


def _report_hubs(session: Session, org_id: int, hubs: dict[str, int]) -> None:
    """A key on more than HUB_LIMIT records ties nothing; ops see it as a conflict."""
    insert_ignore(
        session,
        IdentityConflict,
        [{"org_id": org_id, "key": k[:340], "records": n} for k, n in sorted(hubs.items())],
        ["org_id", "key"],
    )


def evidenced(session: Session, org_id: int, keys: set[str], counted: Mapping[str, int] | None = None) -> set[str]:
    """Keys that a person record or a non-noise activity still vouches for.

    `counted`: keys whose records were counted already (the walk's), so only the others are looked up.
    """
    counted = counted or {}
    found = {k for k in keys if counted.get(k, 0) > 0}
    for batch in among_batches(session, sorted(k for k in keys if k not in counted)):
        found.update(
            session.execute(
                select(RECORD_KEYS.c.key)
                .where(RECORD_KEYS.c.org_id == org_id, among(session, RECORD_KEYS.c.key, batch))
                .distinct()
            ).scalars()
        )
    emails = [split_key(k)[1] for k in keys if k.startswith("email:") and k not in found]
    refs = [split_key(k)[1] for k in keys if k.startswith("ref:") and k not in found]
    for column, values, prefix in ((PARTICIPANTS.c.email, emails, "email:"), (PARTICIPANTS.c.person_ref, refs, "ref:")):
        for batch in among_batches(session, values):
            found.update(
                prefix + str(v)
                for v in session.execute(
                    select(column)
                    .join(ACTIVITIES, ACTIVITIES.c.id == PARTICIPANTS.c.activity_id)
                    .where(PARTICIPANTS.c.org_id == org_id, among(session, column, batch), ACTIVITIES.c.noise.is_(None))
                    .distinct()
                ).scalars()
            )
    return found


@dataclass(frozen=True)
class Resolved:
    """What a re-partition did: the contacts whose identities changed, and each seed's contact now."""

    changed: set[int]
    contact_of: dict[str, int]  # seeds without an identity (nothing vouches for them) are absent


def resolve(session: Session, org_id: int, seeds: set[str], created: set[int], prior: Prior | None = None) -> Resolved:
    """Re-partition the seeds' neighbourhood (`created`: contacts new this transaction, kept up to date)."""
    seeds = {k for k in seeds if not k.startswith("phone:")}
    if not seeds:
        return Resolved(set(), {})
    hood = neighbourhood(session, org_id, seeds, prior)
    known = hood.keys.intersection(prior.vouched if prior else ())
    alive = known | evidenced(session, org_id, hood.keys - known, hood.counted)
    if _settled(hood, seeds, alive):  # the common page: no identity to create, move or drop
        return Resolved(set(), {k: hood.identities[k].contact_id for k in seeds if k in hood.identities})
    people = [c & alive for c in components(list(hood.records.values()), hood.keys, frozenset(hood.hubs))]
    people = [p for p in people if p]
    chosen_for: dict[str, int] = {}
    changed = _apply(session, org_id, hood, people, created, chosen_for)
    return Resolved(changed, {k: chosen_for[k] for k in seeds if k in chosen_for})


def _settled(hood: Neighbourhood, seeds: set[str], alive: set[str]) -> bool:
    """Nothing ties (no records), each seed has an identity iff it is evidenced, alone on its contact.

    A seed with neither an identity nor evidence (an address seen only on noise) would be a person of
    its own and be dropped at once: the partition would not change.
    """
    if hood.records or any((k in hood.identities) != (k in alive) for k in hood.keys):
        return False
    sizes = Counter(k.contact_id for k in hood.identities.values())
    return all(sizes[hood.identities[k].contact_id] == 1 for k in seeds if k in hood.identities)


def _apply(
    session: Session,
    org_id: int,
    hood: Neighbourhood,
    people: list[frozenset[str]],
    created: set[int],
    chosen_for: dict[str, int],
) -> set[int]:
    """Write the partition: contact per person (oldest id wins), identities moved, tombstones.

    Fills `chosen_for` (key -> its contact) and returns the contacts whose identities changed.
    """
    origins = {k.origin for k in hood.identities.values() if k.origin is not None}
    free = _free_contacts(session, origins - hood.contacts)

    def order(person: frozenset[str]) -> tuple[int, str]:
        ids = [hood.identities[k].id for k in person if k in hood.identities]
        return (min(ids) if ids else 1 << 62, min(person))

    keys_of: dict[int, set[str]] = defaultdict(set)  # each contact's identities before the partition
    for key, known in hood.identities.items():
        keys_of[known.contact_id].add(key)
    taken: set[int] = set()
    changed: set[int] = set()
    homeless: list[frozenset[str]] = []  # people none of whose contacts is free: new contacts, in this order
    for person in sorted(people, key=order):
        candidates = {hood.identities[k].contact_id for k in person if k in hood.identities}
        candidates |= {o for k in person if k in hood.identities and (o := hood.identities[k].origin) in free}
        chosen = next((c for c in sorted(candidates) if c not in taken), None)
        if chosen is None:
            homeless.append(person)
            continue
        taken.add(chosen)
        chosen_for.update(dict.fromkeys(person, chosen))
        if keys_of[chosen] != person:
            changed.add(chosen)
    for person, chosen in zip(homeless, _new_contacts(session, org_id, homeless), strict=True):
        created.add(chosen)
        taken.add(chosen)
        chosen_for.update(dict.fromkeys(person, chosen))
        changed.add(chosen)
    _move_identities(session, org_id, hood, chosen_for)
    changed |= _retire(session, hood, chosen_for, taken, created)
    contacts = cast(Table, Contact.__table__)  # Core: no ORM session sync to evaluate for these rows
    for batch in among_batches(
        session, sorted(taken & (free | hood.contacts))
    ):  # the contacts made here are active already
        session.execute(
            update(contacts)
            .where(among(session, contacts.c.id, batch), contacts.c.status != "active")
            .values(status="active", merged_into=None)
        )
    return changed


def _free_contacts(session: Session, ids: set[int]) -> set[int]:
    """Of these original contacts, the ones no identity uses now (merged or deleted): a split may revive them."""
    wanted = sorted(ids)
    free: set[int] = set()
    for batch in among_batches(session, wanted):
        free.update(
            session.execute(
                select(CONTACTS.c.id).where(among(session, CONTACTS.c.id, batch), CONTACTS.c.status != "active")
            ).scalars()
        )
    return free


def _new_contacts(session: Session, org_id: int, people: list[frozenset[str]]) -> list[int]:
    """A contact for each person none of whose identities had one (ids ascending in the people's order)."""
    return insert_with_ids(
        session, Contact, [{"org_id": org_id, "company_domain": domain_of(person)} for person in people]
    )


def domain_of(keys: Iterable[str]) -> str | None:
    """The first non-free-mail domain among the keys' addresses (sorted), if any."""
    emails = sorted(split_key(k)[1] for k in keys if k.startswith("email:"))
    return next((d for d in (company_domain(e) for e in emails) if d), None)


def _move_identities(session: Session, org_id: int, hood: Neighbourhood, chosen_for: dict[str, int]) -> None:
    """Point identities at their person's contact; create new ones; drop the unevidenced."""
    moves = [
        {"id": known.id, "contact_id": contact}
        for key, contact in chosen_for.items()
        if (known := hood.identities.get(key)) is not None and known.contact_id != contact
    ]
    bulk_update(session, Identity, moves)
    fresh = [
        {"org_id": org_id, "kind": split_key(k)[0], "value": split_key(k)[1], "contact_id": c, "origin_contact_id": c}
        for k, c in sorted(chosen_for.items())
        if k not in hood.identities
    ]
    if fresh:
        insert_rows(session, Identity, fresh)
    dropped = [v.id for k, v in hood.identities.items() if k not in chosen_for]
    for batch in chunks(dropped):
        session.execute(delete(Identity).where(Identity.id.in_(batch)))


def _retire(
    session: Session, hood: Neighbourhood, chosen_for: dict[str, int], taken: set[int], created: set[int]
) -> set[int]:
    """Contacts no person kept: merged into where their identities went, else deleted.

    Written in a few statements, not two a contact: a retired contact's target is kept (never retired), so the
    tombstones merged into one retired contact are never another's, and the order of the writes does not matter.
    """
    went: dict[int, set[int]] = defaultdict(set)  # each contact's identities' contacts now
    for key, known in hood.identities.items():
        if key in chosen_for:
            went[known.contact_id].add(chosen_for[key])
    gone = sorted(hood.contacts - taken)
    fresh = [c for c in gone if c in created]  # made in this transaction: nothing refers to them
    for batch in chunks(fresh):
        session.execute(delete(Contact).where(Contact.id.in_(batch)))
    created.difference_update(fresh)
    into = {c: min(went[c]) if went.get(c) else None for c in gone if c not in fresh}
    merged = [{"id": c, "status": "merged", "merged_into": t} for c, t in into.items() if t is not None]
    deleted = [
        {"id": c, "status": "deleted", "merged_into": None, "name": None, "company_domain": None}
        for c, t in into.items()
        if t is None
    ]
    bulk_update(session, Contact, merged)
    bulk_update(session, Contact, deleted)
    contacts = cast(Table, Contact.__table__)  # Core: no ORM session sync to evaluate for these rows
    for batch in chunks(sorted(into)):  # the tombstones merged into them follow them
        session.execute(
            update(contacts)
            .where(contacts.c.merged_into.in_(batch), contacts.c.status == "merged")
            .values(
                merged_into=case({c: literal(into[c], BigInteger) for c in batch}, value=contacts.c.merged_into),
                status=case(
                    {c: "deleted" if into[c] is None else "merged" for c in batch}, value=contacts.c.merged_into
                ),
            )
        )
    return set(into)
