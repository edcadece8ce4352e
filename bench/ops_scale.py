"""Server time of the ops surfaces at scale: 10,000 connections (40,000 streams) in PostgreSQL.

Seeds a fresh schema with bulk inserts (orgs, members, connections, sync states with a mix of idle,
backfilling, retrying, failed and stalled streams, identity conflicts, token audit events, and
`--activities` activities generated server-side), then times `collect_ops` (the dashboard's data), the
dashboard's HTML render, `render_metrics` (`/metrics`) and `collect_status` (`sxsync status --json`),
each the best of 3, and prints one JSON line. Usage:
`python -m bench.ops_scale [--connections N] [--activities N] [--pg URL]`.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, insert, text

from models.settings import Settings
from models.tables import AuditEvent, Connection, IdentityConflict, Member, Org, SyncState
from sync.runtime import build_runtime
from web.metrics import TokenCounts, render_metrics
from web.ops_report import collect_ops
from web.status import collect_status

STREAMS = {"gmail": ["messages"], "google_calendar": ["events"], "google_contacts": ["connections", "other_contacts"]}


def seed(rt: Any, connections: int, activities: int) -> None:
    """Bulk rows, in a few statements."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    with rt.engine.begin() as conn:
        conn.execute(insert(Org), [{"slug": f"org{i}", "domains": [f"org{i}.test"], "policy": {}} for i in range(10)])
        org_ids = [r[0] for r in conn.execute(text("SELECT id FROM orgs ORDER BY id"))]
        conn.execute(
            insert(Member),
            [{"org_id": org_ids[i % 10], "email": f"rep{i}@org{i % 10}.test"} for i in range(connections // 3 + 1)],
        )
        members = [tuple(r) for r in conn.execute(text("SELECT id, org_id FROM members ORDER BY id"))]
        sources = list(STREAMS)
        rows = []
        for i in range(connections):
            member_id, org_id = members[i // 3]
            source = sources[i % 3]
            rows.append(
                {
                    "org_id": org_id,
                    "member_id": member_id,
                    "source": source,
                    "provider": "google",
                    "account": f"rep{i // 3}@x.test",
                    "status": "paused" if i % 97 == 0 else "active",
                    "extra": {},
                }
            )
        conn.execute(insert(Connection), rows)
        states = []
        for cid, org_id, source in conn.execute(text("SELECT id, org_id, source FROM connections")):
            for stream in STREAMS[source]:
                roll = rng.random()
                states.append(
                    {
                        "org_id": org_id,
                        "connection_id": cid,
                        "stream": stream,
                        "version": 5,
                        "running": roll < 0.2,
                        "failed": roll > 0.99,
                        "attempts": 6 if roll > 0.99 else (2 if roll < 0.02 else 0),
                        "in_full_pass": roll < 0.1,
                        "last_success_at": now - timedelta(seconds=rng.randint(10, 7200)),
                        "last_progress_at": now - timedelta(minutes=45 if roll < 0.005 else 1),
                        "last_error": "history: HTTP 500: boom" if roll > 0.99 else None,
                        "records_total": rng.randint(0, 5000),
                        "api_calls_total": rng.randint(1, 200),
                        "pages_total": rng.randint(1, 20),
                        "cursor": {"historyId": str(rng.randint(1, 10**9))},
                    }
                )
        conn.execute(insert(SyncState), states)
        conn.execute(
            insert(IdentityConflict),
            [{"org_id": org_ids[0], "key": f"email:x{i}@y.test", "records": 30} for i in range(100)],
        )
        conn.execute(
            insert(AuditEvent),
            [
                {
                    "org_id": org_ids[0],
                    "actor": "tokens",
                    "action": "token.refresh" if i % 10 else "token.refresh_failed",
                    "target": f"connection:{i}",
                    "details": {},
                }
                for i in range(50_000)
            ],
        )
        conn.execute(
            text(
                "INSERT INTO activities (org_id, dedupe_key, kind, occurred_at)"
                " SELECT :first + g % 10, 'bench-' || g, 'email', now() - g * interval '1 minute'"
                " FROM generate_series(1, :n) AS g"
            ),
            {"first": org_ids[0], "n": activities},
        )


def best(fn: Callable[[], Any], runs: int = 3) -> float:
    """The best wall time of `runs` calls, in seconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(min(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--activities", type=int, default=1_000_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in args.pg else "?"
    data = Path(f"/tmp/{schema}")
    settings = Settings(
        data_dir=data,
        database_url=f"{args.pg}{sep}options=-csearch_path%3D{schema}",
        secret_keys=Fernet.generate_key().decode(),
        admin_key="k",
    )
    rt = build_runtime(settings)
    try:
        seed(rt, args.connections, args.activities)
        with rt.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        from fastapi.testclient import TestClient

        from web.app import create_app

        client = TestClient(
            create_app(rt.__class__(**{**rt.__dict__, "settings": settings.model_copy(update={"admin_key": "k"})}))
        )
        figures = {
            "connections": args.connections,
            "collect_ops_s": best(lambda: collect_ops(rt, None)),
            "dashboard_html_s": best(lambda: client.get("/ops", headers={"Authorization": "Bearer k"})),
            "metrics_s": best(lambda: render_metrics(rt, TokenCounts(), None)),
            "status_s": best(lambda: collect_status(rt)),
            "activities": args.activities,
        }
        print(json.dumps(figures))
    finally:
        rt.engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
