"""PostgreSQL plans every array lookup for its own values: a cached generic plan of `key = ANY(:array)` made
on a young table scans every row against the whole array (100 ms a page lookup on a 15,000-row table).
Other statements keep psycopg's prepared statements and the server's plan cache."""

from __future__ import annotations

from sqlalchemy import text

from models.db import make_engine

LOOKUP = "SELECT id FROM keys WHERE org_id = :org AND key = ANY(CAST(:keys AS varchar(340)[]))"
BY_ID = "SELECT key FROM keys WHERE id = :id"


def test_array_lookups_are_planned_for_their_values_and_other_statements_stay_prepared(pg_url: str) -> None:
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE keys (id bigserial PRIMARY KEY, org_id bigint, key varchar(340))"))
        conn.execute(text("CREATE INDEX ix_keys ON keys (org_id, key)"))
        conn.execute(text("INSERT INTO keys (org_id, key) SELECT 1, 'email:' || n FROM generate_series(1, 5000) n"))
        conn.commit()
        for round_ in range(12):  # psycopg prepares a statement on its 5th run; PostgreSQL may go generic after 5
            wanted = [f"email:{n}" for n in range(round_ * 100, round_ * 100 + 300)]
            assert len(conn.execute(text(LOOKUP), {"org": 1, "keys": wanted}).all()) == 300 - (round_ == 0)
            assert conn.execute(text(BY_ID), {"id": round_ + 1}).scalar_one() == f"email:{round_ + 1}"
        prepared = dict(
            conn.execute(text("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")).all()
        )
        path = conn.execute(text("SHOW search_path")).scalar_one()
    engine.dispose()
    assert not [s for s in prepared if "ANY" in s], f"an array lookup was prepared: {prepared}"
    assert [n for s, n in prepared.items() if "WHERE id =" in s] == [7], "the plain lookup ran prepared after 5"
    assert path.startswith("t_"), "the URL's own options (the test schema's search path) still apply"
