"""Writing pages into the store: idempotent, deduplicated across mailboxes, deletions converge (SQLite and PG)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from connectors.base import ActivityObservation, Deletion, Participant, Rejection
from models.db import session_factory
from models.network import iter_contacts, read_feed
from models.policy import StrengthPolicy
from models.tables import Activity, Connection, Contact, Interaction, Member, Org, Rejected, Sighting
from sync.ingest import IngestTarget, ingest_page, sweep_unseen
from sync.interactions import OrgView

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def setup_org(engine: Engine) -> tuple[int, dict[str, int], dict[str, int]]:
    """acme.test with alice and bob, each with a gmail connection."""
    with session_factory(engine).begin() as s:
        org = Org(slug="acme", domains=["acme.test"], policy={}, feed_seq=0)
        s.add(org)
        s.flush()
        members, connections = {}, {}
        for email in ("alice@acme.test", "bob@acme.test"):
            m = Member(org_id=org.id, email=email)
            s.add(m)
            s.flush()
            c = Connection(org_id=org.id, member_id=m.id, source="gmail", provider="google", account=email)
            s.add(c)
            s.flush()
            members[email], connections[email] = m.id, c.id
        return org.id, members, connections


def target(org_id: int, members: dict[str, int], connection_id: int, generation: int = 1) -> IngestTarget:
    return IngestTarget(
        org_id=org_id,
        org=OrgView(frozenset({"acme.test"}), members),
        connection_id=connection_id,
        stream="messages",
        generation=generation,
        policy=StrengthPolicy(),
    )


def mail(
    ext: str, msgid: str, sender: str, to: list[str], *, bcc: list[str] = (), name: str | None = None, days_ago: int = 1
) -> ActivityObservation:  # type: ignore[assignment]
    people = (
        [Participant("from", sender, name)] + [Participant("to", t) for t in to] + [Participant("bcc", b) for b in bcc]
    )
    return ActivityObservation(
        source="gmail",
        external_id=ext,
        kind="email",
        dedupe_key=msgid,
        occurred_at=NOW - timedelta(days=days_ago),
        participants=tuple(people),
    )


def counts(s: Session) -> dict[str, int]:
    return {
        t.__tablename__: s.execute(select(func.count()).select_from(t)).scalar_one()
        for t in (Activity, Sighting, Interaction, Rejected)
    } | {
        "contacts": s.execute(select(func.count()).select_from(Contact).where(Contact.status == "active")).scalar_one()
    }


def test_same_page_twice_writes_nothing_the_second_time(engine: Engine) -> None:
    org_id, members, conns = setup_org(engine)
    sessions = session_factory(engine)
    page = [
        mail("a1", "m1@x", "dana@globex.test", ["alice@acme.test"], name="Dana Reyes"),
        mail("a2", "m2@x", "alice@acme.test", ["dana@globex.test", "eve@initech.test"]),
    ]
    rejects = [Rejection("gmail", "a3", "bad_address", "bob@@x")]
    with sessions.begin() as s:
        first = ingest_page(s, target(org_id, members, conns["alice@acme.test"]), page, rejects, NOW)
    with sessions.begin() as s:
        before = counts(s)
        seq = s.get_one(Org, org_id).feed_seq
    with sessions.begin() as s:
        second = ingest_page(s, target(org_id, members, conns["alice@acme.test"]), page, rejects, NOW)
    with sessions.begin() as s:
        assert counts(s) == before
        assert s.get_one(Org, org_id).feed_seq == seq
    assert (first.new, second.new, second.unchanged, second.contacts_published) == (2, 0, 2, 0)
    assert before == {"activities": 2, "sightings": 2, "interactions": 3, "rejected": 1, "contacts": 2}


def test_one_message_in_two_mailboxes_is_one_activity_and_bcc_comes_from_the_senders_copy(engine: Engine) -> None:
    org_id, members, conns = setup_org(engine)
    sessions = session_factory(engine)
    sender_copy = mail(
        "s1", "<m@x>", "alice@acme.test", ["bob@acme.test", "dana@globex.test"], bcc=["eve@initech.test"]
    )
    recipient_copy = mail("r1", "<m@x>", "alice@acme.test", ["bob@acme.test", "dana@globex.test"])
    with sessions.begin() as s:
        ingest_page(s, target(org_id, members, conns["bob@acme.test"]), [recipient_copy], [], NOW)
    with sessions.begin() as s:
        ingest_page(s, target(org_id, members, conns["alice@acme.test"]), [sender_copy], [], NOW)
    with sessions() as s:
        assert counts(s)["activities"] == 1
        pairs = set(s.execute(select(Interaction.member_id, Interaction.kind)).all())
        assert pairs == {(members["alice@acme.test"], "email_out")}
        assert s.execute(select(func.count()).select_from(Interaction)).scalar_one() == 2
    # deleted from the sender's mailbox only: Bcc is no longer known, Dana still is
    with sessions.begin() as s:
        ingest_page(s, target(org_id, members, conns["alice@acme.test"]), [Deletion("gmail", "s1")], [], NOW)
    with sessions() as s:
        assert counts(s)["activities"] == 1
        assert counts(s)["contacts"] == 1
        assert [c["emails"] for c in iter_contacts(s, org_id)] == [["dana@globex.test"]]
    # deleted everywhere: the activity, its interactions and the contact go
    with sessions.begin() as s:
        ingest_page(s, target(org_id, members, conns["bob@acme.test"]), [Deletion("gmail", "r1")], [], NOW)
    with sessions() as s:
        assert counts(s) == {"activities": 0, "sightings": 0, "interactions": 0, "rejected": 0, "contacts": 0}


def test_full_pass_sweep_removes_copies_the_pass_did_not_see(engine: Engine) -> None:
    org_id, members, conns = setup_org(engine)
    sessions = session_factory(engine)
    alice = conns["alice@acme.test"]
    with sessions.begin() as s:
        ingest_page(
            s,
            target(org_id, members, alice, 1),
            [
                mail("a1", "m1", "dana@globex.test", ["alice@acme.test"]),
                mail("a2", "m2", "kim@hooli.test", ["alice@acme.test"]),
            ],
            [],
            NOW,
        )
    with sessions.begin() as s:  # generation 2 sees only a1 (a2's deletion was lost with the history)
        ingest_page(
            s, target(org_id, members, alice, 2), [mail("a1", "m1", "dana@globex.test", ["alice@acme.test"])], [], NOW
        )
        swept = sweep_unseen(s, target(org_id, members, alice, 2), NOW)
    assert swept.deleted == 1
    with sessions() as s:
        assert [c["emails"] for c in iter_contacts(s, org_id)] == [["dana@globex.test"]]


def test_feed_replay_from_zero_equals_the_current_contacts(engine: Engine) -> None:
    org_id, members, conns = setup_org(engine)
    sessions = session_factory(engine)
    alice = conns["alice@acme.test"]
    for i in range(30):
        with sessions.begin() as s:
            ingest_page(
                s,
                target(org_id, members, alice),
                [mail(f"a{i}", f"m{i}", f"p{i % 7}@globex.test", ["alice@acme.test"], name=f"P {i % 7}")],
                [],
                NOW,
            )
    with sessions.begin() as s:
        ingest_page(s, target(org_id, members, alice), [Deletion("gmail", f"a{i}") for i in range(0, 30, 7)], [], NOW)
    replayed: dict[str, dict[str, object]] = {}
    after = None
    with sessions() as s:
        while True:
            page = read_feed(s, org_id, after, 4)
            for item in page.items:
                if item["change"] == "upserted":
                    replayed[item["contact"]["id"]] = item["contact"]
                else:
                    replayed.pop(item["id"], None)
            after = page.next
            if not page.has_more:
                break
        current = {c["id"]: c for c in iter_contacts(s, org_id)}
    assert replayed == current
    # every message of p0 (i % 7 == 0) was deleted: p0 is gone, the six others stay
    assert sorted(c["emails"][0] for c in current.values()) == [f"p{i}@globex.test" for i in range(1, 7)]
    assert all(c["name"] and c["name"].startswith("P ") for c in current.values())


def test_name_is_the_most_frequent_display_name_whatever_the_order(engine: Engine) -> None:
    org_id, members, conns = setup_org(engine)
    sessions = session_factory(engine)
    alice = conns["alice@acme.test"]
    names = ["Dana R", "Dana Reyes", "Dana Reyes", "D"]
    for i, name in enumerate(names):
        with sessions.begin() as s:
            ingest_page(
                s,
                target(org_id, members, alice),
                [mail(f"a{i}", f"m{i}", "dana@globex.test", ["alice@acme.test"], name=name)],
                [],
                NOW,
            )
    with sessions() as s:
        (contact,) = list(iter_contacts(s, org_id))
    assert contact["name"] == "Dana Reyes"
    assert contact["company_domain"] == "globex.test"
    (rel,) = contact["relationships"]
    assert rel["member"] == "alice@acme.test" and rel["interactions"]["email_in"] == 4
