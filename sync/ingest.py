"""Write one page of observations into the network store, in the caller's transaction."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from connectors.base import ActivityObservation, Deletion, Observation, PersonObservation, Rejection
from models.policy import StrengthPolicy
from models.store import (
    among,
    bulk_delete,
    bulk_update,
    core,
    insert_ignore,
    insert_rows,
    insert_with_ids,
    lock_org,
    publish_contacts,
)
from models.tables import Activity, Connection, Interaction, Member, Org, Participant, Rejected, Sighting
from sync.activity_rows import ActivityRows, Stored, Written, activity_rows
from sync.contacts import ContactBook
from sync.identity import email_key, is_user_ref, ref_key
from sync.interactions import OrgView, UnionParticipant, derive, union
from sync.optout_filter import drop_suppressed
from sync.records import RecordTarget, delete_records, member_of_refs, sweep_records, upsert_records
from sync.relationships import recompute_contacts, recompute_relationships

ACTIVITIES = core(Activity)
SIGHTINGS = core(Sighting)

T = TypeVar("T")
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps with options builds an encoder per call


@dataclass(frozen=True)
class IngestTarget:
    """Where a page lands: the org's view and the connection that fetched it."""

    org_id: int
    org: OrgView
    connection_id: int
    stream: str
    generation: int
    policy: StrengthPolicy
    keep_subjects: bool = False
    region: str = "US"
    suppression_secret: bytes | None = None  # None: no opt-out filtering (tests of the bare store)

    @property
    def records(self) -> RecordTarget:
        """The same target, as the person-record writer sees it."""
        return RecordTarget(self.org_id, self.org, self.connection_id, self.stream, self.generation, self.region)


@dataclass
class IngestStats:
    """What a page changed (for logs, metrics and the bench)."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0
    activities_touched: int = 0
    contacts_published: int = 0
    touched_contacts: set[int] = field(default_factory=set)


def content_hash(obs: ActivityObservation, keep_subjects: bool) -> str:
    """A stable digest of what we store of a copy: unchanged copies write nothing."""
    payload = [
        obs.kind,
        obs.dedupe_key,
        obs.occurred_at.isoformat(),
        obs.noise,
        obs.malformed_from,
        obs.subject if keep_subjects else None,
        sorted((p.role, p.email, p.name or "", p.declined) for p in obs.participants),
    ]
    return hashlib.sha256(_COMPACT.encode(payload).encode()).hexdigest()


def ingest_page(
    session: Session,
    target: IngestTarget,
    observations: Sequence[Observation],
    rejections: Sequence[Rejection],
    now: datetime,
) -> IngestStats:
    """Upsert copies and records by natural key, apply deletions, and recompute what they touched."""
    lock_org(session, target.org_id)
    if target.suppression_secret is not None:
        observations = drop_suppressed(session, observations, target.suppression_secret, target.region)
    stats = IngestStats()
    activities = _last_copy_wins([o for o in observations if isinstance(o, ActivityObservation)])
    people = [o for o in observations if isinstance(o, PersonObservation)]
    deletions = [o for o in observations if isinstance(o, Deletion)]
    book = ContactBook(session, target.org, target.org_id)
    written = Written()
    touched = _upsert_copies(session, target, activities, stats, book, written)
    new, changed, phone_rejections = upsert_records(session, target.records, people, book)
    stats.new += new
    stats.changed += changed
    if deletions:
        removed = _delete_copies(session, target, deletions, stats, book)
        written.forget(removed)
        touched |= removed
        stats.deleted += delete_records(session, target.connection_id, deletions, book)
    _settle(session, target, touched, book, now, stats, written)
    stats.rejected = _record_rejections(session, target, [*rejections, *phone_rejections])
    return stats


def settle_after_purge(
    session: Session, target: IngestTarget, activities: set[int], book: ContactBook, now: datetime, stats: IngestStats
) -> None:
    """After an erasure removed participants or records: recompute and publish (org already locked)."""
    lock_org(session, target.org_id)
    _settle(session, target, activities, book, now, stats)


def _settle(
    session: Session,
    target: IngestTarget,
    activities: set[int],
    book: ContactBook,
    now: datetime,
    stats: IngestStats,
    written: Written | None = None,
) -> None:
    """Re-derive touched activities, re-partition people, rebuild ties, publish changed contacts."""
    pairs = _recompute_activities(session, target, activities, book, written or Written())
    stats.activities_touched = len(activities)
    moved, changed = book.settle()
    contacts = recompute_relationships(session, target.org_id, pairs, now, target.policy)
    contacts |= recompute_contacts(session, target.org_id, moved, now, target.policy)
    contacts |= changed
    stats.touched_contacts = contacts
    stats.contacts_published = publish_contacts(session, target.org_id, contacts)


def target_for(
    session: Session,
    org: Org,
    *,
    connection_id: int,
    stream: str,
    generation: int,
    suppression_secret: bytes | None,
) -> IngestTarget:
    """The org's view for the rules, read inside the writing transaction.

    A member is known by their address and by every account their connections report.
    """
    members = dict(session.execute(select(Member.email, Member.id).where(Member.org_id == org.id)).all())
    for account, member_id in session.execute(
        select(Connection.account, Connection.member_id).where(Connection.org_id == org.id)
    ):
        members.setdefault(account, member_id)
    return IngestTarget(
        org_id=org.id,
        org=OrgView(domains=frozenset(d.lower() for d in org.domains), members=members),
        connection_id=connection_id,
        stream=stream,
        generation=generation,
        policy=StrengthPolicy.from_org_policy(org.policy),
        keep_subjects=bool(org.policy.get("keep_subjects", False)),
        region=str(org.policy.get("region", "US")),
        suppression_secret=suppression_secret,
    )


def _last_copy_wins(observations: list[ActivityObservation]) -> list[ActivityObservation]:
    """A page naming one copy twice keeps its last version."""
    by_key: dict[tuple[str, str], ActivityObservation] = {}
    for obs in observations:
        by_key[(obs.source, obs.external_id)] = obs
    return list(by_key.values())


def _upsert_copies(
    session: Session,
    target: IngestTarget,
    observations: list[ActivityObservation],
    stats: IngestStats,
    book: ContactBook,
    written: Written,
) -> set[int]:
    """Insert new copies, rewrite changed ones, stamp unchanged ones with the pass generation.

    The activities it creates are kept in `written` with their copies and participants.
    """
    if not observations:
        return set()
    touched: set[int] = set()
    existing = _existing_sightings(session, target.connection_id, [(o.source, o.external_id) for o in observations])
    hashes = {(o.source, o.external_id): content_hash(o, target.keep_subjects) for o in observations}
    stale_generation: list[int] = []
    fresh: list[ActivityObservation] = []
    for obs in observations:
        key = (obs.source, obs.external_id)
        found = existing.get(key)
        if found is not None and found[1] == hashes[key]:
            stats.unchanged += 1
            if found[3] != target.generation:
                stale_generation.append(found[0])
            continue
        fresh.append(obs)
    if stale_generation:
        session.execute(update(Sighting).where(Sighting.id.in_(stale_generation)).values(generation=target.generation))
    if not fresh:
        return touched
    activity_ids, created = _activity_ids(session, target, fresh)
    changed_ids = [existing[(o.source, o.external_id)][0] for o in fresh if (o.source, o.external_id) in existing]
    if changed_ids:
        touched.update(existing[(o.source, o.external_id)][2] for o in fresh if (o.source, o.external_id) in existing)
        book.suspect_sightings(changed_ids)
        session.execute(delete(Participant).where(Participant.sighting_id.in_(changed_ids)))
        session.execute(delete(Sighting).where(Sighting.id.in_(changed_ids)))
        stats.changed += len(changed_ids)
    stats.new += len(fresh) - len(changed_ids)
    rows = [
        {
            "org_id": target.org_id,
            "activity_id": activity_ids[o.dedupe_key],
            "connection_id": target.connection_id,
            "stream": target.stream,
            "source": o.source,
            "external_id": o.external_id,
            "content_hash": hashes[(o.source, o.external_id)],
            "generation": target.generation,
            "occurred_at": o.occurred_at,
            "noise": o.noise,
            "malformed_from": o.malformed_from,
        }
        for o in fresh
    ]
    inserted = insert_with_ids(session, Sighting, rows)
    sighting_ids = dict(zip([(o.source, o.external_id) for o in fresh], inserted, strict=True))
    participant_rows = [
        {
            "org_id": target.org_id,
            "sighting_id": sighting_ids[(o.source, o.external_id)],
            "activity_id": activity_ids[o.dedupe_key],
            "role": p.role,
            "email": p.email,
            "name": p.name[:300] if p.name else None,
            "declined": p.declined,
            "person_ref": p.person_ref,
        }
        for o in fresh
        for p in o.participants
    ]
    if participant_rows:
        insert_rows(session, Participant, participant_rows)
    touched.update(activity_ids[o.dedupe_key] for o in fresh)
    _remember(written, created, [(activity_ids[o.dedupe_key], o) for o in fresh])
    return touched


def _remember(written: Written, created: list[Stored], copies: list[tuple[int, ActivityObservation]]) -> None:
    """Keep the rows of the activities this page created, as they were just written."""
    written.rows.activities += created
    written.ids.update(aid for aid, *_ in created)
    for aid, obs in copies:
        if aid in written.ids:
            written.rows.copies.append((aid, obs.occurred_at, obs.noise, obs.malformed_from))
            written.rows.participants += ((aid, p.role, p.email, p.declined, p.person_ref) for p in obs.participants)


def _existing_sightings(
    session: Session, connection_id: int, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str, int, int]]:
    """(source, external_id) -> (sighting id, content hash, activity id, generation)."""
    found: dict[tuple[str, str], tuple[int, str, int, int]] = {}
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, ext in keys:
        by_source[source].append(ext)
    for source, ids in by_source.items():
        for chunk in _chunks(ids):
            rows = session.execute(
                select(
                    SIGHTINGS.c.id,
                    SIGHTINGS.c.external_id,
                    SIGHTINGS.c.content_hash,
                    SIGHTINGS.c.activity_id,
                    SIGHTINGS.c.generation,
                ).where(
                    SIGHTINGS.c.connection_id == connection_id,
                    SIGHTINGS.c.source == source,
                    among(session, SIGHTINGS.c.external_id, chunk),
                )
            )
            for sid, ext, digest, activity_id, generation in rows:
                found[(source, ext)] = (sid, digest, activity_id, generation)
    return found


def _activity_ids(
    session: Session, target: IngestTarget, observations: list[ActivityObservation]
) -> tuple[dict[str, int], list[Stored]]:
    """The activity of each dedupe key, created when new (the org lock makes this race-free); the created rows."""
    keys = sorted({o.dedupe_key for o in observations})
    ids: dict[str, int] = {}
    for chunk in _chunks(keys):
        ids.update(
            session.execute(
                select(ACTIVITIES.c.dedupe_key, ACTIVITIES.c.id).where(
                    ACTIVITIES.c.org_id == target.org_id, among(session, ACTIVITIES.c.dedupe_key, chunk)
                )
            ).all()
        )
    first = {o.dedupe_key: o for o in observations}
    new_keys = [key for key in keys if key not in ids]
    missing = [
        {
            "org_id": target.org_id,
            "dedupe_key": key,
            "kind": first[key].kind,
            "occurred_at": first[key].occurred_at,
            "noise": first[key].noise,
            "subject": first[key].subject if target.keep_subjects else None,
        }
        for key in new_keys
    ]
    made = dict(zip(new_keys, insert_with_ids(session, Activity, missing), strict=True))
    ids.update(made)
    return ids, [(aid, first[key].kind, first[key].occurred_at, first[key].noise) for key, aid in made.items()]


def _delete_copies(
    session: Session, target: IngestTarget, deletions: list[Deletion], stats: IngestStats, book: ContactBook
) -> set[int]:
    """Remove copies the source deleted; their activities are recomputed (and dropped if orphaned)."""
    if not deletions:
        return set()
    existing = _existing_sightings(session, target.connection_id, [(d.source, d.external_id) for d in deletions])
    if not existing:
        return set()
    doomed = [v[0] for v in existing.values()]
    book.suspect_sightings(doomed)
    session.execute(delete(Sighting).where(Sighting.id.in_(doomed)))
    stats.deleted += len(existing)
    return {v[2] for v in existing.values()}


def sweep_unseen(session: Session, target: IngestTarget, now: datetime, *, everything: bool = False) -> IngestStats:
    """After a full pass: drop this stream's copies and records the pass did not see (lost deletions).

    With `everything`, drop all the connection's data, every stream (disconnect purge, retention).
    """
    lock_org(session, target.org_id)
    query = select(Sighting.id, Sighting.activity_id).where(Sighting.connection_id == target.connection_id)
    if not everything:
        query = query.where(Sighting.stream == target.stream, Sighting.generation < target.generation)
    stale = session.execute(query).all()
    stats = IngestStats()
    book = ContactBook(session, target.org, target.org_id)
    doomed = [sid for sid, _ in stale]
    book.suspect_sightings(doomed)
    for chunk in _chunks(doomed):
        session.execute(delete(Sighting).where(Sighting.id.in_(chunk)))
    stats.deleted = len(stale)
    stats.deleted += sweep_records(
        session, target.connection_id, None if everything else (target.stream, target.generation), book
    )
    if stats.deleted:
        _settle(session, target, {aid for _, aid in stale}, book, now, stats)
    return stats


def _recompute_activities(
    session: Session, target: IngestTarget, activity_ids: set[int], book: ContactBook, written: Written
) -> set[tuple[int, int]]:
    """Re-derive touched activities from their remaining copies; return touched (member, identity) pairs."""
    pairs: set[tuple[int, int]] = set()
    for chunk in _chunks(sorted(activity_ids)):
        pairs |= _recompute_chunk(session, target, chunk, book, activity_rows(session, chunk, written))
    return pairs


def _recompute_chunk(
    session: Session, target: IngestTarget, ids: list[int], book: ContactBook, rows: ActivityRows
) -> set[tuple[int, int]]:
    """One bounded batch of `_recompute_activities`."""
    copies: dict[int, list[tuple[datetime, str | None, bool]]] = defaultdict(list)
    for aid, occurred_at, noise, malformed in rows.copies:
        copies[aid].append((occurred_at, noise, malformed))
    people: dict[int, list[UnionParticipant]] = defaultdict(list)
    refs = {r for *_, r in rows.participants if r}
    owners = member_of_refs(session, target.org_id, refs, dict(target.org.members))
    everyone: set[str] = set()
    for aid, role, email, declined, ref in rows.participants:
        who = _who(email, ref, owners)
        if who is not None:
            people[aid].append(UnionParticipant(role, who, declined))
            everyone.add(who)
    key_of = {who: _key(who) for who in everyone}  # each address normalized once, not once per activity
    book.suspect(key_of.values())
    old: dict[int, set[tuple[int, int, str]]] = defaultdict(set)
    old_times: dict[int, set[datetime]] = defaultdict(set)
    for aid, member_id, identity_id, kind, at in rows.interactions:
        old[aid].add((member_id, identity_id, kind))
        old_times[aid].add(at)
    stored = {aid: (kind, at, noise) for aid, kind, at, noise in rows.activities}
    kinds = {aid: kind for aid, (kind, _, _) in stored.items()}
    orphaned = [aid for aid in ids if aid not in copies]
    derived: dict[int, tuple[datetime, str | None, set[tuple[int, str, str]]]] = {}
    externals: set[str] = set()
    for aid in ids:
        if aid not in copies or aid not in kinds:
            continue
        noise = next((n for _, n, _ in copies[aid] if n), None)
        malformed = any(m for _, _, m in copies[aid])
        outcome = derive(kinds[aid], union(people[aid]), target.org, source_noise=noise, malformed_from=malformed)
        externals.update(key_of[e] for e in outcome.externals)
        derived[aid] = (min(at for at, _, _ in copies[aid]), outcome.noise, set(outcome.interactions))
    book.want(externals, vouched=True)
    # every external person of a kept activity gets an identity here, not only those with interactions
    # (their counterparts are all among them): the re-partition then has nothing left to create
    identity_of = book.ensure(externals)
    touched: set[tuple[int, int]] = set()
    new_rows = []
    gone: list[dict[str, object]] = []
    moved_times: list[dict[str, object]] = []
    restated: list[dict[str, object]] = []
    for aid, (occurred_at, noise, found) in derived.items():
        want = {(m, identity_of[key_of[e]], k) for m, e, k in found}
        for m, i, k in want - old[aid]:
            new_rows.append(
                {
                    "org_id": target.org_id,
                    "activity_id": aid,
                    "member_id": m,
                    "identity_id": i,
                    "kind": k,
                    "occurred_at": occurred_at,
                }
            )
            touched.add((m, i))
        for m, i, k in old[aid] - want:
            gone.append({"activity_id": aid, "member_id": m, "identity_id": i, "kind": k})
            touched.add((m, i))
        if old_times[aid] - {occurred_at}:  # the activity's time moved (an earlier copy): so do its interactions
            moved_times.append({"activity_id": aid, "occurred_at": occurred_at})
            touched.update((m, i) for m, i, _ in old[aid] & want)
        if stored[aid][1:] != (occurred_at, noise):
            restated.append({"id": aid, "occurred_at": occurred_at, "noise": noise})
    bulk_update(session, Interaction, moved_times, by=("activity_id",))
    bulk_update(session, Activity, restated)
    for aid in orphaned:
        touched.update((m, i) for m, i, _ in old[aid])
    if orphaned:
        session.execute(delete(Interaction).where(Interaction.activity_id.in_(orphaned)))
        session.execute(delete(Activity).where(Activity.id.in_(orphaned)))
    bulk_delete(session, Interaction, gone)
    if new_rows:
        insert_rows(session, Interaction, new_rows)
    return touched


def _who(email: str, ref: str | None, owners: dict[str, str]) -> str | None:
    """A participant as the interaction rules see it: an address, a resolved CRM owner, or "ref:source:id"."""
    if email:
        return email
    if not ref:
        return None
    if ref in owners:
        return owners[ref]
    return None if is_user_ref(ref) else ref_key(ref)


def _key(who: str) -> str:
    """The identity key of a rules-level participant."""
    return who if who.startswith("ref:") else email_key(who)


def _record_rejections(session: Session, target: IngestTarget, rejections: Sequence[Rejection]) -> int:
    """Keep every rejected record with its reason (idempotent on replay)."""
    rows = [
        {
            "org_id": target.org_id,
            "connection_id": target.connection_id,
            "source": r.source,
            "external_id": r.external_id[:255],
            "reason": r.reason[:40],
            "detail": r.detail[:300],
        }
        for r in rejections
    ]
    if rows:
        insert_ignore(session, Rejected, rows, ["connection_id", "source", "external_id", "reason", "detail"])
    return len(rows)


def _chunks(items: Sequence[T], size: int = 500) -> Iterable[list[T]]:
    """Bounded IN lists (SQLite caps bound parameters)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
