"""PostgreSQL plans every lookup for its own values: a cached generic plan of `key = ANY(:array)` made on a
young table scans every row against the whole array (100 ms a page lookup on a 15,000-row table)."""

from __future__ import annotations

from sqlalchemy import text

from models.db import make_engine

LOOKUP = "SELECT id FROM keys WHERE org_id = :org AND key = ANY(CAST(:keys AS varchar(340)[]))"


def test_repeated_array_lookups_on_a_never_analyzed_table_get_custom_plans(pg_url: str) -> None:
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE keys (id bigserial PRIMARY KEY, org_id bigint, key varchar(340))"))
        conn.execute(text("CREATE INDEX ix_keys ON keys (org_id, key)"))
        conn.execute(text("INSERT INTO keys (org_id, key) SELECT 1, 'email:' || n FROM generate_series(1, 5000) n"))
        conn.commit()
        for round_ in range(12):  # psycopg prepares a statement on its 5th run; PostgreSQL may go generic after 5
            wanted = [f"email:{n}" for n in range(round_ * 100, round_ * 100 + 300)]
            assert len(conn.execute(text(LOOKUP), {"org": 1, "keys": wanted}).all()) == 300 - (round_ == 0)
        plans = conn.execute(
            text("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%FROM keys%'")
        ).all()
        conn.rollback()  # a session-level setting outlives the transactions that follow it
        setting = conn.execute(text("SHOW plan_cache_mode")).scalar_one()
        path = conn.execute(text("SHOW search_path")).scalar_one()
    engine.dispose()
    assert plans, "psycopg prepared the repeated lookup"
    assert [generic for generic, _ in plans] == [0], f"generic plans were used: {plans}"
    assert setting == "force_custom_plan"
    assert path.startswith("t_"), "the URL's own options (the test schema's search path) still apply"
