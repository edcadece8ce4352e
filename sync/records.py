"""Address-book and CRM entries: stored by natural key, with the identity keys they tie together."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from connectors.base import Deletion, PersonObservation, Rejection
from connectors.phones import InvalidPhone, normalize_phone
from models.store import among, insert_rows, insert_with_ids
from models.tables import PersonRecord, RecordKey, SyncState
from sync.contacts import ContactBook
from sync.identity import email_key, phone_key, ref_key
from sync.interactions import OrgView
from sync.resolve import among_batches, chunks

NOT_A_CONTACT = ("user",)  # CRM users / owners are people of the org


@dataclass(frozen=True)
class RecordTarget:
    """Where records land and how their phones are read."""

    org_id: int
    org: OrgView
    connection_id: int
    stream: str
    generation: int
    region: str


@dataclass(frozen=True)
class CleanRecord:
    """A person observation after phone normalization, with its content digest."""

    obs: PersonObservation
    phones: tuple[str, ...]
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.obs.source}:{self.obs.external_id}"


def clean(obs: PersonObservation, region: str) -> tuple[CleanRecord, list[Rejection]]:
    """Normalize the phones (E.164 in the org's region); a bad phone is rejected, the record stays."""
    phones: set[str] = set()
    rejected = []
    for raw in obs.phones:
        try:
            phones.add(normalize_phone(raw, region))
        except InvalidPhone as exc:
            rejected.append(Rejection(obs.source, obs.external_id, exc.reason, f"phone {raw[:60]!r}: {exc}"[:300]))
    payload = [obs.kind, obs.name, sorted(set(obs.emails)), sorted(phones), obs.company, sorted(set(obs.merged_from))]
    digest = hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()
    return CleanRecord(obs, tuple(sorted(phones)), digest), rejected


def record_keys(record: CleanRecord, org: OrgView) -> list[str]:
    """The keys a record ties: its external addresses, its own and merged ids, its phones.

    CRM users and entries that only list the org's own people tie nothing: they are not contacts.
    """
    obs = record.obs
    if obs.kind in NOT_A_CONTACT:
        return []
    external = sorted({e for e in obs.emails if org.is_external(e)})
    if obs.emails and not external:
        return []
    keys = [email_key(e) for e in external] + [ref_key(record.ref)]
    keys += [ref_key(f"{obs.source}:{m}") for m in sorted(set(obs.merged_from))]
    keys += [phone_key(p) for p in record.phones]
    return keys


def upsert_records(
    session: Session, target: RecordTarget, observations: Sequence[PersonObservation], book: ContactBook
) -> tuple[int, int, list[Rejection]]:
    """Insert new records, rewrite changed ones, stamp unchanged ones; return (new, changed, rejections)."""
    latest = {(o.source, o.external_id): o for o in observations}
    existing = _existing(session, target.connection_id, list(latest))
    cleaned: dict[tuple[str, str], CleanRecord] = {}
    rejections: list[Rejection] = []
    for key, obs in latest.items():
        if key in existing and existing[key][3]:  # a merge is for good: later copies of the winner omit it
            obs = replace(obs, merged_from=tuple(sorted({*obs.merged_from, *existing[key][3]})))
        cleaned[key], rejected = clean(obs, target.region)
        rejections += rejected
    generations = _generations(session, target, {o.owner_stream for o in latest.values()})
    stale_generation = [
        existing[k][0]
        for k, r in cleaned.items()
        if k in existing and existing[k][1] == r.digest and _owned(r, target) and existing[k][2] != target.generation
    ]
    for batch in chunks(stale_generation):
        session.execute(update(PersonRecord).where(PersonRecord.id.in_(batch)).values(generation=target.generation))
    fresh = [r for k, r in cleaned.items() if k not in existing or existing[k][1] != r.digest]
    changed_ids = [
        existing[(r.obs.source, r.obs.external_id)][0] for r in fresh if (r.obs.source, r.obs.external_id) in existing
    ]
    if changed_ids:
        _forget(session, changed_ids, book)
    rows = [
        {
            "org_id": target.org_id,
            "connection_id": target.connection_id,
            "stream": r.obs.owner_stream or target.stream,
            "source": r.obs.source,
            "external_id": r.obs.external_id,
            "ref": r.ref,
            "kind": r.obs.kind,
            "name": r.obs.name[:300] if r.obs.name else None,
            "emails": sorted(set(r.obs.emails)),
            "phones": list(r.phones),
            "company": r.obs.company[:300] if r.obs.company else None,
            "merged_from": sorted(set(r.obs.merged_from)),
            "content_hash": r.digest,
            "generation": _generation_of(r, target, existing, generations),
        }
        for r in fresh
    ]
    if rows:
        ids = dict(zip([r.ref for r in fresh], insert_with_ids(session, PersonRecord, rows), strict=True))
        key_rows = []
        for r in fresh:
            keys = record_keys(r, target.org)
            book.want(k for k in keys if not k.startswith("phone:"))
            key_rows += [{"org_id": target.org_id, "record_id": ids[r.ref], "key": k[:340]} for k in keys]
        if key_rows:
            insert_rows(session, RecordKey, key_rows)
    return len(fresh) - len(changed_ids), len(changed_ids), rejections


def _owned(record: CleanRecord, target: RecordTarget) -> bool:
    """The page's stream owns the record (a re-send on another stream's behalf does not)."""
    return record.obs.owner_stream in (None, target.stream)


def _generations(session: Session, target: RecordTarget, owners: set[str | None]) -> dict[str, int]:
    """The current full-pass generation of each owning stream named by re-sent records."""
    streams = sorted(s for s in owners if s is not None and s != target.stream)
    if not streams:
        return {}
    query = select(SyncState.stream, SyncState.generation).where(
        SyncState.connection_id == target.connection_id, SyncState.stream.in_(streams)
    )
    return {stream: generation for stream, generation in session.execute(query)}


def _generation_of(
    record: CleanRecord,
    target: RecordTarget,
    existing: dict[tuple[str, str], tuple[int, str, int, list[str]]],
    generations: dict[str, int],
) -> int:
    """The page's generation for its own records; a re-sent record keeps its owner's (stored, or current)."""
    if _owned(record, target):
        return target.generation
    stored = existing.get((record.obs.source, record.obs.external_id))
    owner = record.obs.owner_stream or target.stream
    return stored[2] if stored is not None else generations.get(owner, target.generation)


def _existing(
    session: Session, connection_id: int, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str, int, list[str]]]:
    """(source, external_id) -> (record id, digest, generation, merged-from ids) of this connection's records."""
    found: dict[tuple[str, str], tuple[int, str, int, list[str]]] = {}
    sources = {s for s, _ in keys}
    for source in sources:
        for batch in among_batches(session, sorted(e for s, e in keys if s == source)):
            for rid, ext, digest, generation, merged in session.execute(
                select(
                    PersonRecord.id,
                    PersonRecord.external_id,
                    PersonRecord.content_hash,
                    PersonRecord.generation,
                    PersonRecord.merged_from,
                ).where(
                    PersonRecord.connection_id == connection_id,
                    PersonRecord.source == source,
                    among(session, PersonRecord.external_id, batch),
                )
            ):
                found[(source, ext)] = (rid, digest, generation, list(merged))
    return found


def forget_records(session: Session, record_ids: list[int], book: ContactBook) -> int:
    """Remove records by id (erasure); returns how many."""
    _forget(session, record_ids, book)
    return len(record_ids)


def _forget(session: Session, record_ids: list[int], book: ContactBook) -> None:
    """Remove records (and their keys), making every key they carried a suspect."""
    for batch in chunks(record_ids):
        book.suspect(
            k
            for k in session.execute(select(RecordKey.key).where(among(session, RecordKey.record_id, batch))).scalars()
            if not k.startswith("phone:")
        )
        session.execute(delete(RecordKey).where(RecordKey.record_id.in_(batch)))
        session.execute(delete(PersonRecord).where(PersonRecord.id.in_(batch)))


def delete_records(session: Session, connection_id: int, deletions: Sequence[Deletion], book: ContactBook) -> int:
    """Records the source deleted; returns how many were stored."""
    existing = _existing(session, connection_id, [(d.source, d.external_id) for d in deletions])
    _forget(session, [v[0] for v in existing.values()], book)
    return len(existing)


def sweep_records(session: Session, connection_id: int, unseen_by: tuple[str, int] | None, book: ContactBook) -> int:
    """Records of a stream that a full pass (stream, generation) did not see; None: all the connection's."""
    query = select(PersonRecord.id).where(PersonRecord.connection_id == connection_id)
    if unseen_by is not None:
        stream, generation = unseen_by
        query = query.where(PersonRecord.stream == stream, PersonRecord.generation < generation)
    stale = list(session.execute(query).scalars())
    _forget(session, stale, book)
    return len(stale)


def member_of_refs(session: Session, org_id: int, refs: set[str], members: dict[str, int]) -> dict[str, str]:
    """CRM user references ("source:user:id") resolved to the member address their record names."""
    found: dict[str, str] = {}
    for batch in among_batches(session, sorted(refs)):
        for ref, emails in session.execute(
            select(PersonRecord.ref, PersonRecord.emails).where(
                PersonRecord.org_id == org_id, among(session, PersonRecord.ref, batch), PersonRecord.kind == "user"
            )
        ):
            member = next((e for e in sorted(emails) if e in members), None)
            if member:
                found[ref] = member
    return found
