"""`insert_rows` writes what SQLAlchemy's own INSERT would: processed types, scalar defaults, called defaults.

(SQLite and PostgreSQL.) The driver-level path binds tuples (SQLite) or one array per column (PostgreSQL),
so each column's conversion has to be the column type's own: UTC times, JSON lists, booleans, NULLs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Engine, select

from models.db import session_factory
from models.store import insert_rows, insert_with_ids
from models.tables import Activity, Contact, Participant, PersonRecord, Sighting
from tests.sync.test_ingest import setup_org

PARIS = timezone(timedelta(hours=1))


def test_rows_come_back_as_sqlalchemy_would_have_stored_them(engine: Engine) -> None:
    org_id, _, conns = setup_org(engine)
    conn = conns["alice@acme.test"]
    sessions = session_factory(engine)
    at = datetime(2026, 3, 1, 9, 30, tzinfo=PARIS)
    with sessions.begin() as s:
        (activity,) = insert_with_ids(
            s, Activity, [{"org_id": org_id, "dedupe_key": "<a@x>", "kind": "email", "occurred_at": at}]
        )
        # generation, noise and malformed_from are left to their scalar defaults
        sightings = [
            {"org_id": org_id, "activity_id": activity, "connection_id": conn, "stream": "messages",
             "source": "gmail", "external_id": f"m{i}", "content_hash": "0" * 64, "occurred_at": at}
            for i in range(3)
        ]  # fmt: skip
        insert_rows(s, Sighting, sightings)
        people = [
            {"org_id": org_id, "sighting_id": sid, "activity_id": activity, "role": role, "email": email,
             "name": None, "declined": declined, "person_ref": None}
            for sid in s.execute(select(Sighting.id)).scalars()
            for role, email, declined in (("from", "p@globex.test", False), ("to", "", True))
        ]  # fmt: skip
        insert_rows(s, Participant, people)  # name and person_ref: NULL in every row
        record = {"org_id": org_id, "connection_id": conn, "stream": "contacts", "source": "google_contacts",
                  "external_id": "c1", "ref": "google_contacts:c1", "kind": "contact", "name": "Pé Ñ",
                  "emails": ["p@globex.test"], "phones": [], "company": None, "merged_from": [],
                  "content_hash": "1" * 64, "generation": 2}  # fmt: skip
        insert_rows(s, PersonRecord, [record])
        insert_rows(s, Contact, [{"org_id": org_id, "company_domain": "globex.test"}])  # created_at: called
    with sessions() as s:
        stored = s.execute(select(Sighting.generation, Sighting.noise, Sighting.malformed_from, Sighting.occurred_at))
        assert set(stored) == {(0, None, False, at.astimezone(UTC))}
        rows = s.execute(select(Participant.role, Participant.email, Participant.name, Participant.declined)).all()
        assert sorted(rows) == [("from", "p@globex.test", None, False)] * 3 + [("to", "", None, True)] * 3
        kept = s.execute(select(PersonRecord.emails, PersonRecord.phones, PersonRecord.name)).one()
        assert tuple(kept) == (["p@globex.test"], [], "Pé Ñ")
        contact = s.execute(select(Contact.status, Contact.feed_seq, Contact.created_at)).one()
        assert contact.status == "active" and contact.feed_seq == 0
        assert abs(contact.created_at - datetime.now(UTC)) < timedelta(minutes=5)
