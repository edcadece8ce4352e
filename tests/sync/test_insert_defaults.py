"""Bulk inserts call a column's plain callable default for each row, as SQLAlchemy's INSERT does (both stores)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from models.db import session_factory
from models.store import core, insert_rows, insert_with_ids
from models.tables import Contact, Org
from tests.sync.test_ingest import setup_org


def test_omitted_timestamps_are_called_per_row(engine: Engine) -> None:
    org_id, _, _ = setup_org(engine)
    started = datetime.now(UTC)
    with session_factory(engine).begin() as s:
        ids = insert_with_ids(s, Contact, [{"org_id": org_id, "company_domain": None} for _ in range(3)])
        contacts = core(Contact)
        stored = s.execute(
            select(contacts.c.created_at, contacts.c.updated_at, contacts.c.status).where(contacts.c.id.in_(ids))
        ).all()
    assert len(stored) == 3
    for created, updated, status in stored:
        assert started - timedelta(seconds=1) <= created <= datetime.now(UTC)
        assert started - timedelta(seconds=1) <= updated <= datetime.now(UTC)
        assert status == "active"


def test_omitted_collections_are_fresh_empty_ones(engine: Engine) -> None:
    with session_factory(engine).begin() as s:
        insert_rows(s, Org, [{"slug": "a"}, {"slug": "b"}])
        orgs = core(Org)
        stored = s.execute(select(orgs.c.slug, orgs.c.domains, orgs.c.policy, orgs.c.feed_seq)).all()
    assert sorted(stored) == [("a", [], {}, 0), ("b", [], {}, 0)]
