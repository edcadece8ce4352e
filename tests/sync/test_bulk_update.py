"""`bulk_update` leaves what its row-by-row UPDATEs would (SQLite and PostgreSQL).

The driver-level path binds tuples (SQLite) or one array per column in one `UPDATE … FROM unnest` (PostgreSQL),
so a key named twice, a key matching several rows, NULLs and the columns' own conversions have to come out as
one UPDATE a row, in order, would leave them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Engine, select

from models.db import session_factory
from models.store import bulk_update, insert_rows, insert_with_ids
from models.tables import Activity, Connection, Contact, PersonRecord, Sighting
from tests.sync.test_ingest import setup_org

PARIS = timezone(timedelta(hours=1))


def test_a_key_named_twice_keeps_its_last_row_and_others_are_untouched(engine: Engine) -> None:
    org_id, _, _ = setup_org(engine)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        ids = insert_with_ids(s, Contact, [{"org_id": org_id, "company_domain": f"d{i}.test"} for i in range(4)])
        bulk_update(
            s,
            Contact,
            [
                {"id": ids[0], "name": "first", "company": None},
                {"id": ids[1], "name": None, "company": "Globex"},
                {"id": ids[0], "name": "last", "company": "Initech"},
                {"id": 10**9, "name": "nobody", "company": None},
            ],
        )
        rows = s.execute(select(Contact.id, Contact.name, Contact.company).order_by(Contact.id)).all()
    assert [tuple(r) for r in rows] == [
        (ids[0], "last", "Initech"),
        (ids[1], None, "Globex"),
        (ids[2], None, None),
        (ids[3], None, None),
    ]


def test_a_key_matching_several_rows_updates_them_all_with_the_columns_own_types(engine: Engine) -> None:
    org_id, _, conns = setup_org(engine)
    conn = conns["alice@acme.test"]
    sessions = session_factory(engine)
    at = datetime(2026, 3, 1, 9, 30, tzinfo=PARIS)
    with sessions.begin() as s:
        activities = insert_with_ids(
            s,
            Activity,
            [{"org_id": org_id, "dedupe_key": f"<{i}@x>", "kind": "email", "occurred_at": at} for i in range(2)],
        )
        insert_rows(
            s,
            Sighting,
            [
                {"org_id": org_id, "activity_id": activities[i % 2], "connection_id": conn, "stream": "messages",
                 "source": "gmail", "external_id": f"m{i}", "content_hash": "0" * 64, "occurred_at": at}
                for i in range(4)
            ],
        )  # fmt: skip
        later = datetime(2026, 3, 2, 8, 0, tzinfo=PARIS)
        bulk_update(s, Sighting, [{"activity_id": activities[0], "occurred_at": later}], by=("activity_id",))
        (record,) = insert_with_ids(
            s,
            PersonRecord,
            [{"org_id": org_id, "connection_id": conn, "stream": "contacts", "source": "google",
              "external_id": "p1", "ref": "google:p1", "kind": "contact", "emails": ["a@x.test"], "phones": [],
              "merged_from": [], "content_hash": "1" * 64, "generation": 1}],
        )  # fmt: skip
        bulk_update(s, PersonRecord, [{"id": record, "emails": ["b@y.test", "c@y.test"], "name": "Bea"}])
        times = s.execute(select(Sighting.external_id, Sighting.occurred_at).order_by(Sighting.external_id)).all()
        person = s.execute(select(PersonRecord.emails, PersonRecord.name)).one()
    stored = {ext: when.replace(tzinfo=when.tzinfo or UTC) for ext, when in times}
    assert stored == {"m0": later, "m1": at, "m2": later, "m3": at}
    assert tuple(person) == (["b@y.test", "c@y.test"], "Bea")


def test_a_column_set_on_update_is_still_set(engine: Engine) -> None:
    _, _, conns = setup_org(engine)
    conn = conns["alice@acme.test"]
    sessions = session_factory(engine)
    with sessions.begin() as s:
        before = s.execute(select(Connection.updated_at).where(Connection.id == conn)).scalar_one()
        bulk_update(s, Connection, [{"id": conn, "status": "paused"}])
        status, after = s.execute(select(Connection.status, Connection.updated_at).where(Connection.id == conn)).one()
    assert status == "paused"
    assert after > before
