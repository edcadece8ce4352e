"""Ingest writes in bulk: statements per page do not grow with the page, and the shortcuts keep the results.

(SQLite and PostgreSQL.) A page's new activities are re-derived from the rows the page just wrote instead
of read back; copies deleted in the same page, several copies of one new message, and people without an
interaction of their own must come out as they would from the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, event, func, select

from connectors.base import ActivityObservation, Deletion, Participant
from models.db import session_factory
from models.network import iter_contacts
from models.store import bulk_delete, bulk_update, insert_with_ids
from models.tables import Activity, Contact, Interaction, Org
from sync.ingest import ingest_page
from tests.sync.test_ingest import NOW, counts, mail, setup_org, target


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements the engine sends meanwhile (an executemany counts once)."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def page_of(n: int, start: int) -> list[ActivityObservation]:
    """n messages to alice, each from a new external person with a new colleague in Cc."""
    return [
        mail(f"x{i}", f"<m{i}@x>", f"p{i}@globex.test", ["alice@acme.test", f"q{i}@initech.test"], name=f"P {i}")
        for i in range(start, start + n)
    ]


def test_a_page_of_200_messages_sends_as_many_statements_as_a_page_of_20(engine: Engine) -> None:
    org_id, members, conns = setup_org(engine)
    sessions = session_factory(engine)
    alice = target(org_id, members, conns["alice@acme.test"])
    sent = []
    for n, start in ((20, 0), (200, 1000)):
        with statements(engine) as seen, sessions.begin() as s:
            stats = ingest_page(s, alice, page_of(n, start), [], NOW)
        assert stats.new == n
        sent.append(len(seen))
    assert sent[0] == sent[1]


def test_a_copy_deleted_in_the_page_that_created_it_leaves_nothing(engine: Engine) -> None:
    org_id, members, conns = setup_org(engine)
    sessions = session_factory(engine)
    page = [mail("a1", "<m1@x>", "dana@globex.test", ["alice@acme.test"]), Deletion("gmail", "a1")]
    with sessions.begin() as s:
        ingest_page(s, target(org_id, members, conns["alice@acme.test"]), page, [], NOW)
    with sessions() as s:
        assert counts(s) == {"activities": 0, "sightings": 0, "interactions": 0, "rejected": 0, "contacts": 0}


def test_two_copies_of_a_new_message_in_one_page_are_one_activity_with_their_union(engine: Engine) -> None:
    org_id, members, conns = setup_org(engine)
    sessions = session_factory(engine)
    sent = mail("s1", "<m@x>", "alice@acme.test", ["dana@globex.test"], bcc=["eve@initech.test"])
    later = ActivityObservation(  # the same message filed again, its Date an hour later, no Bcc
        source="gmail",
        external_id="s2",
        kind="email",
        dedupe_key="<m@x>",
        occurred_at=sent.occurred_at + timedelta(hours=1),
        participants=(Participant("from", "alice@acme.test"), Participant("to", "dana@globex.test")),
    )
    with sessions.begin() as s:
        ingest_page(s, target(org_id, members, conns["alice@acme.test"]), [later, sent], [], NOW)
    with sessions() as s:
        assert counts(s)["activities"] == 1
        assert s.execute(select(Activity.occurred_at)).scalar_one() == sent.occurred_at
        got = set(s.execute(select(Interaction.kind, Interaction.occurred_at)).all())
        assert got == {("email_out", sent.occurred_at)}
        assert s.execute(select(func.count()).select_from(Interaction)).scalar_one() == 2  # Dana and Eve


def test_a_person_in_cc_without_an_interaction_of_their_own_is_a_contact(engine: Engine) -> None:
    org_id, members, conns = setup_org(engine)
    sessions = session_factory(engine)
    page = [mail("a1", "<m1@x>", "dana@globex.test", ["alice@acme.test", "eve@initech.test"])]
    with sessions.begin() as s:
        stats = ingest_page(s, target(org_id, members, conns["alice@acme.test"]), page, [], NOW)
    with sessions() as s:
        contacts = {c["emails"][0]: c for c in iter_contacts(s, org_id)}
    assert sorted(contacts) == ["dana@globex.test", "eve@initech.test"]
    assert contacts["eve@initech.test"]["relationships"] == []
    assert stats.contacts_published == 2


def test_bulk_writes_by_key(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions.begin() as s:
        org = Org(slug="acme", domains=["acme.test"], policy={}, feed_seq=0)
        s.add(org)
        s.flush()
        domains = [f"d{i}.test" for i in range(5)]
        ids = insert_with_ids(s, Contact, [{"org_id": org.id, "company_domain": d} for d in domains])
        assert dict(s.execute(select(Contact.id, Contact.company_domain)).all()) == dict(zip(ids, domains, strict=True))
        bulk_update(s, Contact, [{"id": ids[0], "name": "A"}, {"id": ids[1], "name": "B"}])
        bulk_update(s, Contact, [{"company_domain": "d4.test", "status": "deleted"}], by=("company_domain",))
        bulk_delete(s, Contact, [{"id": ids[2], "company_domain": "d2.test"}, {"id": ids[3], "company_domain": "no"}])
        rows = s.execute(select(Contact.id, Contact.name, Contact.status).order_by(Contact.id)).all()
    assert [tuple(r) for r in rows] == [
        (ids[0], "A", "active"),
        (ids[1], "B", "active"),
        (ids[3], None, "active"),
        (ids[4], None, "deleted"),
    ]
