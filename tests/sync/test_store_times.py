"""Bulk writes store a time exactly as SQLAlchemy's own insert does, whatever its zone (both stores)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, cast, insert, select
from sqlalchemy.types import String

from models.db import session_factory
from models.store import bulk_update, core, insert_with_ids
from models.tables import Activity
from tests.sync.test_ingest import setup_org

TIMES = [
    datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC),
    datetime(2026, 3, 1, 12, 30, 5, 120, tzinfo=UTC),
    datetime(2026, 3, 1, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-7))),
    datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
]


def test_bulk_written_times_read_back_as_core_writes_them(engine: Engine) -> None:
    org_id, _, _ = setup_org(engine)
    activities = core(Activity)
    with session_factory(engine).begin() as s:
        rows = [
            {"org_id": org_id, "dedupe_key": f"bulk{n}", "kind": "email", "occurred_at": t} for n, t in enumerate(TIMES)
        ]
        bulk = insert_with_ids(s, Activity, rows)
        for n, t in enumerate(TIMES):
            s.execute(insert(activities).values(org_id=org_id, dedupe_key=f"core{n}", kind="email", occurred_at=t))
        stored = dict(s.execute(select(activities.c.dedupe_key, cast(activities.c.occurred_at, String))).all())
        assert [stored[f"bulk{n}"] for n in range(len(TIMES))] == [stored[f"core{n}"] for n in range(len(TIMES))]
        read = dict(s.execute(select(activities.c.id, activities.c.occurred_at).where(activities.c.id.in_(bulk))).all())
        assert [read[i] for i in bulk] == TIMES
        later = [t + timedelta(days=1) for t in TIMES]
        bulk_update(s, Activity, [{"id": i, "occurred_at": t} for i, t in zip(bulk, later, strict=True)])
        read = dict(s.execute(select(activities.c.id, activities.c.occurred_at).where(activities.c.id.in_(bulk))).all())
        assert [read[i] for i in bulk] == later


def test_bulk_writes_refuse_a_naive_time(engine: Engine) -> None:
    org_id, _, _ = setup_org(engine)
    with session_factory(engine).begin() as s, pytest.raises(ValueError, match="naive"):
        insert_with_ids(
            s, Activity, [{"org_id": org_id, "dedupe_key": "k", "kind": "email", "occurred_at": datetime(2026, 1, 1)}]
        )
