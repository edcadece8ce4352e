"""Scheduler benchmark: the CPU of one `sync.scheduler.tick` over 10,000 connections, and the plans of its queries.

Issue 8: "one tick over 10,000 connections costs O(due), under 1 s of CPU, via an index on next-due time".
Per store (SQLite file, PostgreSQL throwaway schema) and per network size (default 1,000 and 10,000
connections, one Gmail stream each, bulk-inserted: 80 % idle with their next poll an hour away, 20 % running
with a live lease), the bench makes D streams due (default 10 and 1,000), runs `tick` with the in-process
(stub) broker taking the messages, and measures the process CPU (`time.process_time`: on SQLite the store's
work too; on PostgreSQL the server's CPU is not in it) and the wall time, median of `--repeats`. The due
streams are put back between repeats. Every statement the tick sends to `sync_states` is captured as it
runs and EXPLAINed on the same connection and parameters (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on
PostgreSQL, which runs under the app role and row-level security as the product does).

Figures: CPU of a tick at 10 and 1,000 due over 10,000 connections (< 1 s), the ratio 10 due over 10,000 ÷
10 due over 1,000 connections (≈ 1: the tick does not grow with the connections), and whether the due
query's plan uses `ix_sync_states_due`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row  # noqa: E402

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DUE_INDEX = "ix_sync_states_due"
DUE_QUERY = "SELECT sync_states.id, sync_states.connection_id, sync_states.stream, sync_states.version"
RUNNING_SHARE = 0.2
MEMBERS_PER_ORG = 100


@dataclass
class Tick:
    """One size and due count: medians of the repeats, and the plans of the tick's statements."""

    store: str
    connections: int
    due: int
    started: int
    cpu_s: float
    wall_s: float
    reconcile_cpu_s: float  # the tick's second half alone (stalled-chain check), measured right after
    plans: dict[str, str] = field(default_factory=dict)  # statement (shortened) -> plan text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scheduler",
        description=(
            "CPU of one scheduler tick over N connections with D streams due (SQLite and PostgreSQL), and the "
            "query plans of the tick's statements (is the due query on ix_sync_states_due?)."
        ),
    )
    parser.add_argument("--stores", default="sqlite,postgresql", help="comma-separated (default: sqlite,postgresql)")
    parser.add_argument("--sizes", default="1000,10000", help="connections, comma-separated (default: 1000,10000)")
    parser.add_argument("--due", default="10,1000", help="due streams per tick, comma-separated (default: 10,1000)")
    parser.add_argument("--repeats", type=int, default=5, help="ticks measured per case, median (default: 5)")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help=f"PostgreSQL admin URL (default: {PG_ADMIN_URL})")
    parser.add_argument("--plans", action="store_true", help="print every captured statement's plan")
    return parser.parse_args(argv)


@contextmanager
def runtime(store: str, base: Path, pg_url: str) -> Iterator[tuple[Any, Any]]:
    """A migrated runtime on a fresh SQLite file or PostgreSQL schema, with the stub broker wired in, and a
    function that gathers the tables' statistics (as autovacuum would; on PostgreSQL as the tables' owner)."""
    from cryptography.fernet import Fernet
    from sqlalchemy import create_engine, text

    from models.settings import Settings
    from sync.broker import setup_broker
    from sync.runtime import build_runtime

    schema = f"bench_sched_{uuid.uuid4().hex[:10]}"
    if store == "sqlite":
        url = f"sqlite:///{base / (schema + '.db')}"
    else:
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    settings = Settings(data_dir=base, database_url=url, secret_keys=Fernet.generate_key().decode(), broker_url="")
    rt = build_runtime(settings)
    setup_broker(rt)

    def analyze() -> None:
        if store == "sqlite":
            with rt.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
            return
        with admin.connect() as conn:
            conn.execute(text(f'ANALYZE "{schema}".connections, "{schema}".sync_states, "{schema}".members'))

    try:
        yield rt, analyze
    finally:
        rt.engine.dispose()
        if store != "sqlite":
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def seed(rt: Any, connections: int, now: datetime) -> list[int]:
    """N Gmail connections with one stream each: idle (next poll in an hour) or running on a live lease.

    Returns the idle streams' ids (the ones a case makes due). Bulk inserts, in the system scope."""
    from sqlalchemy import insert, select

    from models.rls import system_scope
    from models.tables import Connection, Member, Org, SyncState

    orgs = max(1, connections // MEMBERS_PER_ORG)
    with system_scope(), rt.writes.begin() as session:
        session.execute(
            insert(Org), [{"slug": f"org{i}", "domains": [f"org{i}.test"], "policy": {}} for i in range(orgs)]
        )
        org_ids = list(session.execute(select(Org.id).order_by(Org.id)).scalars())
        session.execute(
            insert(Member),
            [{"org_id": org_ids[i % orgs], "email": f"rep{i}@org{i % orgs}.test"} for i in range(connections)],
        )
        members = session.execute(select(Member.id, Member.org_id).order_by(Member.id)).all()
        session.execute(
            insert(Connection),
            [
                {
                    "org_id": org_id,
                    "member_id": member_id,
                    "source": "gmail",
                    "provider": "google",
                    "account": f"rep{i}@x.test",
                    "status": "active",
                    "extra": {},
                }
                for i, (member_id, org_id) in enumerate(members)
            ],
        )
        conns = session.execute(select(Connection.id, Connection.org_id).order_by(Connection.id)).all()
        running_every = round(1 / RUNNING_SHARE)
        running = {"running": True, "lease_owner": "w", "lease_until": now + timedelta(minutes=5), "next_run_at": None}
        idle_values = {"running": False, "next_run_at": now + timedelta(hours=1)}
        session.execute(
            insert(SyncState),
            [
                {
                    "org_id": org_id,
                    "connection_id": cid,
                    "stream": "messages",
                    "version": 3,
                    "in_full_pass": False,
                    "last_success_at": now - timedelta(minutes=5),
                    "last_progress_at": now,
                    **(running if i % running_every == 0 else idle_values),
                }
                for i, (cid, org_id) in enumerate(conns)
            ],
        )
        idle = list(session.execute(select(SyncState.id).where(SyncState.running.is_(False))).scalars())
    return idle


def make_due(rt: Any, ids: Sequence[int], now: datetime, later: datetime) -> None:
    """Exactly `ids` due now; every other idle stream back to its poll in an hour."""
    from sqlalchemy import update

    from models.rls import system_scope
    from models.tables import SyncState

    with system_scope(), rt.writes.begin() as session:
        session.execute(
            update(SyncState)
            .where(SyncState.next_run_at.is_(None), SyncState.lease_owner.is_(None))
            .values(running=False, next_run_at=later)
        )
        session.execute(update(SyncState).where(SyncState.id.in_(list(ids))).values(running=False, next_run_at=now))


class PlanCapture:
    """EXPLAIN every statement on sync_states as the tick sends it: same connection, same parameters."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.on = False
        self.plans: dict[str, str] = {}
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._before)

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if not self.on or executemany or "sync_states" not in statement:
            return
        head = " ".join(statement.split())[:90]
        if head in self.plans:
            return
        sqlite = conn.dialect.name == "sqlite"
        explain = cursor.connection.cursor()
        try:
            explain.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, params)
            rows = explain.fetchall()
        finally:
            explain.close()
        self.plans[head] = "\n".join(str(r[-1] if sqlite else r[0])[:160] for r in rows)


def measure(rt: Any, store: str, connections: int, due: int, idle: Sequence[int], repeats: int) -> Tick:
    """The median CPU and wall time of `repeats` ticks with `due` streams due (plans from the first)."""
    import dramatiq

    from sync.scheduler import reconcile, tick

    broker = dramatiq.get_broker()
    capture = PlanCapture(rt.engine)
    cpus, walls, reconciles, started = [], [], [], 0
    step = max(1, len(idle) // due)
    ids = list(idle[::step])[:due]
    for rep in range(repeats):
        now = datetime.now(UTC)
        make_due(rt, ids, now - timedelta(minutes=1), now + timedelta(hours=1))
        capture.on = rep == 0
        cpu, wall = time.process_time(), time.perf_counter()
        started, _ = tick(rt, now)
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
        capture.on = False
        cpu = time.process_time()
        reconcile(rt, now)  # nothing stalled: the same work as the tick's second half
        reconciles.append(time.process_time() - cpu)
        broker.flush_all()
    capture.close()
    median = statistics.median
    return Tick(store, connections, due, started, median(cpus), median(walls), median(reconciles), capture.plans)


def run(args: argparse.Namespace) -> list[Tick]:
    ticks: list[Tick] = []
    stores = [s for s in args.stores.split(",") if s]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    dues = [int(d) for d in args.due.split(",") if d]
    with tempfile.TemporaryDirectory(prefix="bench-sched-") as tmp:
        for store in stores:
            for n in sizes:
                print(f"# scheduler: {store}, {n:,} connections …", file=sys.stderr, flush=True)
                with runtime(store, Path(tmp), args.pg_url) as (rt, analyze):
                    idle = seed(rt, n, datetime.now(UTC))
                    analyze()
                    for d in dues:
                        ticks.append(measure(rt, store, n, min(d, len(idle)), idle, args.repeats))
    return ticks


def uses_due_index(t: Tick) -> bool:
    """The plan of the due query (the SELECT of id, connection, stream, version) names ix_sync_states_due."""
    return any(DUE_INDEX in plan for head, plan in t.plans.items() if head.startswith(DUE_QUERY))


def print_report(ticks: Sequence[Tick], args: argparse.Namespace) -> None:
    print(f"\nscheduler tick — median of {args.repeats}; CPU = this process (SQLite's work included, not PostgreSQL's)")
    print(
        f"{'store':<11}{'connections':>12}{'due':>7}{'started':>9}{'CPU ms':>9}{'wall ms':>9}{'reconcile CPU ms':>18}"
        "  due query on index"
    )
    for t in ticks:
        print(
            f"{t.store:<11}{t.connections:>12,}{t.due:>7,}{t.started:>9,}{1000 * t.cpu_s:>9.1f}{1000 * t.wall_s:>9.1f}"
            f"{1000 * t.reconcile_cpu_s:>18.1f}  {'yes' if uses_due_index(t) else 'NO'}"
        )
    for t in ticks:
        if args.plans or not uses_due_index(t):
            print(f"\n# plans, {t.store} {t.connections:,} connections, {t.due} due:")
            for head, plan in t.plans.items():
                print(f"#   {head}\n#     " + plan.replace("\n", "\n#     "))


def rows(size: str) -> list[Row]:
    """The suite's rows (bench/table.py): 1k and 10k connections, 10 and 1,000 due, SQLite and PostgreSQL."""
    args = parse_args(["--repeats", "3" if size == "quick" else "5"])
    ticks = run(args)
    out: list[Row] = []
    for store in ("sqlite", "postgresql"):
        mine = {(t.connections, t.due): t for t in ticks if t.store == store}
        big, small = max(c for c, _ in mine), min(c for c, _ in mine)
        many, few = max(d for _, d in mine), min(d for _, d in mine)
        worst, light, light_small = mine[(big, many)], mine[(big, few)], mine[(small, few)]
        on_index = all(uses_due_index(t) for t in mine.values())
        out.append(
            Row(
                f"scheduler tick CPU, {big:,} connections, {many:,} due ({store})",
                f"{worst.cpu_s:.3f} s",
                "< 1 s, due query on its index",
                worst.cpu_s < 1.0 and on_index,
                f"{DUE_INDEX} {'used' if on_index else 'NOT used'}; {few} due: {light.cpu_s * 1000:.1f} ms",
            )
        )
        starting = (light.cpu_s - light.reconcile_cpu_s) / (light_small.cpu_s - light_small.reconcile_cpu_s)
        out.append(
            Row(
                f"scheduler, starting {few} due streams: CPU at {big:,} ÷ {small:,} connections ({store})",
                f"{starting:.2f}",
                "≤ 1.5 (O(due))",
                starting <= 1.5,
                f"{many:,} due ÷ {few} due at {big:,}: {worst.cpu_s / light.cpu_s:.1f}",
            )
        )
        whole = light.cpu_s / light_small.cpu_s
        out.append(
            Row(
                f"scheduler, whole tick ({few} due): CPU at {big:,} ÷ {small:,} connections ({store})",
                f"{whole:.2f}",
                "≤ 1.5 (O(due))",
                whole <= 1.5,
                f"reconcile {light_small.reconcile_cpu_s * 1000:.1f} → {light.reconcile_cpu_s * 1000:.1f} ms"
                + ("; PostgreSQL's own CPU not counted" if store == "postgresql" else ""),
            )
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_report(run(args), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
