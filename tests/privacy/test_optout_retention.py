"""Opt-out erases a person everywhere and keeps them out; retention removes exactly an ended member's data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from models.network import iter_contacts, read_feed
from models.tables import Base, Connection, Member, Suppression
from sandbox.world import generate_world
from web.stack import Stack, running_stack

MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")


def world(seed: int = 8) -> object:
    return generate_world(seed=seed, size=400, org_domain="acme.test", members=MEMBERS)


@pytest.fixture
def synced(tmp_path: Path, store_url: str) -> Iterator[Stack]:
    with running_stack(data_dir=tmp_path, world=world(), database_url=store_url, api_keys="acme=key-a") as stack:  # type: ignore[arg-type]
        stack.seed_org("acme", "acme.test", MEMBERS, {"sources": ["gmail"]})
        for email in MEMBERS[:2]:
            stack.connect("acme", email)
        assert stack.sync().failed == 0
        yield stack


def rows_mentioning(stack: Stack, needle: str) -> list[str]:
    """Every row of every table whose text mentions the needle (the opt-out list holds hashes only)."""
    found = []
    with stack.rt.sessions() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)):
                if needle in " ".join(str(v) for v in row).lower():
                    found.append(f"{table.name}: {tuple(row)[:3]}")
    return found


def busiest_email(stack: Stack) -> tuple[str, str]:
    with stack.rt.sessions() as s:
        contacts = list(iter_contacts(s, 1))
    best = max(
        (c for c in contacts if len(c["emails"]) == 1),
        key=lambda c: sum(sum(r["interactions"].values()) for r in c["relationships"]),
    )
    return best["emails"][0], best["id"]


def opt_out(stack: Stack, identity: str) -> requests.Response:
    return requests.post(
        f"{stack.rt.settings.public_url}/api/opt-out",
        json={"identity": identity},
        headers={"Authorization": "Bearer key-a"},
        timeout=60,
    )


def test_opting_out_erases_every_row_about_the_person_and_later_syncs_store_nothing(synced: Stack) -> None:
    email, contact_id = busiest_email(synced)
    assert rows_mentioning(synced, email)
    with synced.rt.sessions() as s:
        cursor = read_feed(s, 1, None, 100_000).next
    response = opt_out(synced, email.upper())
    assert response.status_code == 200 and response.json()["status"] == "opted_out"
    assert rows_mentioning(synced, email) == []
    with synced.rt.sessions() as s:
        changes = read_feed(s, 1, cursor, 1000).items
        assert {"change": "deleted", "id": contact_id} in changes
        assert s.execute(select(Suppression)).scalars().all()
    # the person writes again: the next sync drops them before anything is stored
    synced.sandbox.google.deliver(sender=email, to=["alice@acme.test"], subject="hello again")
    assert synced.sync().failed == 0
    assert rows_mentioning(synced, email) == []


def test_opting_out_an_unknown_address_still_keeps_it_out(synced: Stack) -> None:
    newcomer = "newcomer@initech.test"
    assert opt_out(synced, newcomer).status_code == 200
    synced.sandbox.google.deliver(sender=newcomer, to=["bob@acme.test"], subject="first contact")
    assert synced.sync().failed == 0
    assert rows_mentioning(synced, newcomer) == []


def test_a_malformed_opt_out_is_a_clear_422(synced: Stack) -> None:
    response = opt_out(synced, "bob@@nowhere")
    assert response.status_code == 422 and "not an email address" in response.text


def network_of(stack: Stack) -> list[tuple[tuple[str, ...], list[tuple[str, tuple[int, ...]]]]]:
    with stack.rt.sessions() as s:
        return sorted(
            (
                tuple(c["emails"]),
                sorted((r["member"], tuple(r["interactions"].values())) for r in c["relationships"]),
            )
            for c in iter_contacts(s, 1)
        )


def test_retention_removes_exactly_the_ended_members_data(synced: Stack, tmp_path: Path) -> None:
    from privacy.retention import sweep_retention

    today = synced.rt.clock().date()
    with synced.rt.writes.begin() as s:
        alice = s.execute(select(Member).where(Member.email == "alice@acme.test")).scalar_one()
        alice.ended_on = today - timedelta(days=365)
    assert sweep_retention(synced.rt, today) == []  # not yet: the period is one full year
    with synced.rt.writes.begin() as s:
        s.execute(select(Member).where(Member.email == "alice@acme.test")).scalar_one().ended_on = today - timedelta(
            days=366
        )
    (swept,) = sweep_retention(synced.rt, today)
    assert swept.connections == 1 and swept.erased > 0
    assert sweep_retention(synced.rt, today) == []  # idempotent
    with synced.rt.sessions() as s:
        assert set(s.execute(select(Connection.account)).scalars()) == {"bob@acme.test"}
        assert s.execute(select(Member.email).order_by(Member.email)).scalars().all() == [
            "bob@acme.test",
            "carol@acme.test",
        ]
    assert any(g.revoked for g in synced.sandbox.google.grants.values())
    # the same world synced from bob's mailbox alone, alice never a member: the same network
    with running_stack(
        data_dir=tmp_path / "ref", world=world(), database_url=f"sqlite:///{tmp_path / 'ref.db'}"
    ) as ref:  # type: ignore[arg-type]
        ref.seed_org("acme", "acme.test", MEMBERS[1:], {"sources": ["gmail"]})
        ref.connect("acme", "bob@acme.test")
        assert ref.sync().failed == 0
        assert network_of(ref) == network_of(synced)
