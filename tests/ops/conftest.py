"""Operations fixtures: a product stack per test, page jobs held by hand, Redis on a database of its own."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from models.network import iter_contacts
from models.tables import Activity, Connection, Interaction, Member, Participant, Relationship, Sighting, SyncState
from sandbox.world import World, generate_world
from tests.conftest import redis_database
from web.stack import Stack, running_stack

ORG = "acme"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
Job = tuple[int, str, int]


def small_world(size: int = 300, seed: int = 13) -> World:
    return generate_world(seed=seed, size=size, org_domain=DOMAIN, members=MEMBERS)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Real Redis on database 13 (db 0 is flushed by concurrent suite runs), flushed around the test."""
    yield from redis_database(13)


@dataclass
class Manual:
    """A stack whose page jobs land in `jobs` for the test to deliver (or lose) by hand."""

    stack: Stack
    jobs: deque[Job]


@pytest.fixture
def manual(tmp_path: Path, store_url: str) -> Iterator[Manual]:
    with running_stack(
        data_dir=tmp_path, world=small_world(), database_url=store_url, workers=0, page_size=100
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        jobs: deque[Job] = deque()
        stack.rt.enqueue = lambda c, s, v, _delay: jobs.append((c, s, v))
        yield Manual(stack, jobs)


def connection_ids(stack: Stack, email: str, source: str | None = None) -> list[int]:
    """A member's connections (one per source its Google consent covers), optionally of one source."""
    query = select(Connection.id).join(Member, Member.id == Connection.member_id).where(Member.email == email)
    if source is not None:
        query = query.where(Connection.source == source)
    with stack.rt.sessions() as session:
        return sorted(session.execute(query).scalars())


def sync_states(stack: Stack, email: str | None = None) -> list[SyncState]:
    """Every stream's sync state (of one member's connections)."""
    query = select(SyncState).join(Connection, Connection.id == SyncState.connection_id)
    if email is not None:
        query = query.join(Member, Member.id == Connection.member_id).where(Member.email == email)
    with stack.rt.sessions() as session:
        return list(session.execute(query.order_by(SyncState.id)).scalars())


def only_gmail(stack: Stack) -> None:
    """Pause every connection but Gmail's, so a test about Gmail sees Gmail alone."""
    with stack.rt.sessions.begin() as session:
        session.execute(update(Connection).where(Connection.source != "gmail").values(status="paused"))


Network = tuple[dict[str, int], list[tuple[tuple[str, ...], str | None, list[tuple[str, tuple[int, ...]]]]]]


def network(stack: Stack) -> Network:
    """Row counts and the contacts with their interactions: equal for equal syncs, whatever the store."""
    with stack.rt.sessions() as s:
        rows = {
            t.__tablename__: s.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (Activity, Sighting, Participant, Interaction, Relationship)
        }
        org_id = s.execute(select(Connection.org_id).limit(1)).scalar_one()
        contacts = sorted(
            (
                tuple(c["emails"]),
                c["name"],
                sorted((r["member"], tuple(r["interactions"].values())) for r in c["relationships"]),
            )
            for c in iter_contacts(s, org_id)
        )
    return rows, contacts
