"""Gmail backfill benchmark: the whole product (web/stack.py) against the sandbox, N messages per run.

For each size the parent starts a fresh subprocess (so peak RSS is per size), which:

1. generates a sandbox world whose connected mailboxes hold ≈ N listable messages inside the
   365-day backfill window (the generator's `size` counts distinct emails across all mailboxes,
   so it is calibrated: generate, count, regenerate once at the corrected size);
2. runs the product as the demo does (`running_stack`): seeds the org, connects the reps through the
   real OAuth flow over HTTP, then times `stack.sync()` from start to finish — in-process Dramatiq
   worker threads, or real `python -m dramatiq --processes 1 --threads 4 worker` processes on Redis;
3. reads the Gmail API calls from the sandbox's counters (list, batch, profile, history, get — not
   OAuth) and compares them with the minimum (per mailbox: 1 getProfile + ⌈M/500⌉ list pages +
   ⌈M/100⌉ batches of 100);
4. measures the "raw ceiling": the activities, sightings and participants the product stored, read
   back and bulk-inserted with plain SQLAlchemy Core `insert()` executemany (batches of 500 rows,
   one transaction per 500 sightings like the product's pages) into a fresh store of the same kind;
5. reports the pure write rate: wall time inside the pipeline's write transaction
   (`sync.pipeline._commit`, wrapped by bench/probe.py) and inside `ingest_page` alone.

Ratios are the figures to read: the machine is shared and noisy, so bare timings move run to run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/1"
ORG = "acme"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
API_KINDS = ("profile", "list", "batch", "history", "get")  # Gmail API HTTP requests (not OAuth)
LIST_PAGE = 500
BATCH_PARTS = 100
RAW_BATCH = 500
BACKFILL_DAYS = 365  # the product's default (Settings.backfill_days)
SOURCE = "gmail"
# every table ingest_page writes, parents first (raw_every_table inserts a transaction's rows in this order)
INGEST_TABLES = (
    "activities", "sightings", "participants", "contacts", "identities", "interactions", "relationships",
    "person_records", "record_keys", "rejected",
)  # fmt: skip
Transaction = list[tuple[Any, list[dict[str, Any]]]]  # (table, rows) in insert order


# --------------------------------------------------------------------------------------------------
# parent: one subprocess per size, one table
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gmail_backfill",
        description=(
            "Gmail backfill of N messages through the whole product against the sandbox: API calls vs the "
            "minimum, end-to-end messages/s, peak RSS, and the write path vs a raw SQLAlchemy Core bulk insert."
        ),
    )
    parser.add_argument(
        "--sizes", default="10000,50000", help="comma-separated message counts to sync (default: 10000,50000)"
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite", help="store (default: sqlite)")
    parser.add_argument(
        "--broker",
        choices=("inprocess", "redis"),
        default="inprocess",
        help="in-process worker threads, or real dramatiq worker processes on Redis (default: inprocess)",
    )
    parser.add_argument(
        "--members",
        type=int,
        choices=(1, 2, 3),
        default=3,
        help="how many reps connect their mailbox (default: 3; N is split across them)",
    )
    parser.add_argument("--threads", type=int, default=4, help="worker threads (default: 4, as the stack)")
    parser.add_argument("--seed", type=int, default=7, help="world seed (default: 7)")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help=f"PostgreSQL admin URL (default: {PG_ADMIN_URL})")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis URL, flushed first (default: {REDIS_URL})")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help=(
            "profile the sync phase per size into DIR (in-process broker only): cProfile of each page job "
            "on a thread-CPU timer; prints the hotspots"
        ),
    )
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="with --profile, also sample every thread with py-spy (wall clock; costly on a small machine)",
    )
    parser.add_argument(
        "--raw-repeats", type=int, default=3, help="raw-ceiling runs per size, median reported (default: 3)"
    )
    parser.add_argument("--json", action="store_true", help="also print each size's raw figures as JSON lines")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dirs (logs, SQLite files)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one sync (default: 1800)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        result = run_one(args, args.child)
        print("BENCH-RESULT " + json.dumps(result), flush=True)
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = []
    for size in sizes:
        cmd = [sys.executable, "-m", "bench.gmail_backfill", *_child_args(args), "--child", str(size)]
        print(f"# size {size:,}: running in a fresh process …", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
        found = [line for line in proc.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
        if proc.returncode != 0 or not found:
            sys.stdout.write(proc.stdout)
            print(f"size {size}: the benchmark process failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        for line in proc.stdout.splitlines():
            if not line.startswith("BENCH-RESULT "):
                print(line)  # the child's profile report, if any
        results.append(json.loads(found[-1][len("BENCH-RESULT ") :]))
    print_table(results, args)
    if args.json:
        for result in results:
            print(json.dumps(result))
    return 0


def _child_args(args: argparse.Namespace) -> list[str]:
    out = [
        "--store", args.store, "--broker", args.broker, "--members", str(args.members),
        "--threads", str(args.threads), "--seed", str(args.seed), "--pg-url", args.pg_url,
        "--redis-url", args.redis_url, "--timeout", str(args.timeout), "--raw-repeats", str(args.raw_repeats),
    ]  # fmt: skip
    if args.profile:
        out += ["--profile", args.profile]
    if args.py_spy:
        out.append("--py-spy")
    if args.keep:
        out.append("--keep")
    return out


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """One row per size; ratios first-class, seconds only in the detail lines."""
    head = (
        "target", "synced", "API calls", "calls/1k", "min/1k", "x min", "e2e msg/s", "peak RSS MB",
        "raw rows/s", "raw msg/s", "e2e/raw", "write msg/s", "write/raw", "ingest/raw", "ingest/raw CPU",
    )  # fmt: skip
    rows = []
    for r in results:
        synced = r["synced"]
        raw_mps = synced / r["raw_seconds"]
        write_mps = synced / r["commit_seconds"] if r["commit_seconds"] else float("nan")
        ingest_mps = synced / r["ingest_seconds"] if r["ingest_seconds"] else float("nan")
        e2e_mps = synced / r["e2e_seconds"]
        rss = r["rss_self_mb"] + r["rss_children_mb"]
        rows.append(
            (
                f"{r['target']:,}",
                f"{synced:,}",
                f"{r['api_calls']:,}",
                f"{1000 * r['api_calls'] / synced:.2f}",
                f"{1000 * r['min_calls'] / synced:.2f}",
                f"{r['api_calls'] / r['min_calls']:.3f}",
                f"{e2e_mps:,.0f}",
                f"{rss:,.0f}"
                + (f" ({r['rss_self_mb']:,.0f}+{r['rss_children_mb']:,.0f})" if r["rss_children_mb"] else ""),
                f"{r['raw_rows'] / r['raw_seconds']:,.0f}",
                f"{raw_mps:,.0f}",
                f"{e2e_mps / raw_mps:.3f}",
                f"{write_mps:,.0f}",
                f"{write_mps / raw_mps:.3f}",
                f"{ingest_mps / raw_mps:.3f}",
                f"{r['raw_cpu_seconds'] / r['ingest_cpu_seconds']:.3f}" if r["ingest_cpu_seconds"] else "n/a",
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    title = (
        f"Gmail backfill — store={args.store}, broker={args.broker}, "
        f"{args.members} mailbox(es) connected, {args.threads} worker threads, seed {args.seed}"
    )
    print()
    print(title)
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print()
    for r in results:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(r["calls"].items()))
        print(
            f"  {r['target']:,}: world size {r['world_size']:,} → {r['expected']:,} listable in-window copies in "
            f"{len(r['mailboxes'])} mailbox(es); stored {r['activities']:,} activities, {synced_of(r):,} sightings, "
            f"{r['participants']:,} participants, {r['interactions']:,} interactions, {r['contacts']:,} contacts, "
            f"{r['rejected']:,} rejected; {r['pages']} pages; calls: {calls}; quota units {r['quota_units']:,}; "
            f"e2e {r['e2e_seconds']:.1f} s, write phase {r['commit_seconds']:.1f} s "
            f"(ingest_page {r['ingest_seconds']:.1f} s, {r['ingest_cpu_seconds']:.1f} s CPU), raw insert "
            f"{r['raw_seconds']:.2f} s ({r['raw_cpu_seconds']:.2f} s CPU; runs {r['raw_runs']}) of {r['raw_rows']:,} "
            f"rows; RSS before sync {r['rss_before_sync_mb']:,.0f} MB"
        )
        phases = r.get("phase_cpu_seconds") or {}
        if phases:
            per_msg = {k: 1000 * v / r["synced"] for k, v in phases.items()}
            jobs = phases.get("fetch", 0) + r["commit_cpu_seconds"]
            print(
                f"    CPU during the sync: {r['sync_process_cpu_seconds']:.1f} s in the bench process "
                f"({100 * r['sync_process_cpu_seconds'] / r['e2e_seconds']:.0f} % of one core over the wall time), "
                f"of which page jobs' fetch + write {jobs:.1f} s"
                + (" (the jobs ran in the worker process)" if r["broker"] == "redis" else "")
            )
            print(
                f"    CPU ms per message: fetch {per_msg.get('fetch', 0):.3f}, ingest_page "
                f"{1000 * r['ingest_cpu_seconds'] / r['synced']:.3f} (upsert copies {per_msg.get('upsert', 0):.3f}, "
                f"settle {per_msg.get('settle', 0):.3f}), raw insert {1000 * r['raw_cpu_seconds'] / r['synced']:.3f}"
            )


def synced_of(r: dict[str, Any]) -> int:
    return int(r["synced"])


# --------------------------------------------------------------------------------------------------
# child: one size
# --------------------------------------------------------------------------------------------------


def run_one(args: argparse.Namespace, target: int) -> dict[str, Any]:
    from sandbox.world import generate_world
    from sync.logs import configure_logging

    now = datetime.now(UTC).replace(microsecond=0)  # the product's clock is the system clock (workers too)
    members = MEMBERS[: args.members]
    world, world_size, expected = calibrated_world(generate_world, target, members, args.seed, now)
    base = Path(tempfile.mkdtemp(prefix="sxsync-bench-"))
    configure_logging("INFO", base / "logs", stderr=False)
    try:
        with store_url(args, base, "product") as url:
            result = run_stack(args, base, url, world, members, target)
            result |= {"world_size": world_size, "expected": expected}
            result |= raw_ceiling(url, lambda i: store_url(args, base, f"raw{i}"), args.raw_repeats)
    except BaseException:
        print(f"# failed: logs kept in {base / 'logs'}", file=sys.stderr)
        raise
    if args.keep:
        print(f"# kept {base}", file=sys.stderr)
    else:
        shutil.rmtree(base, ignore_errors=True)
    return result


def listable_in_window(world: Any, members: Sequence[str], now: datetime) -> dict[str, int]:
    """Copies a full pass would store: not SPAM/TRASH, received inside the backfill window."""
    from sandbox.mailbox import HIDDEN_LABELS

    oldest_ms = (now - timedelta(days=BACKFILL_DAYS)).timestamp() * 1000
    return {
        owner: sum(
            1
            for m in world.mailboxes[owner]
            if m.internal_date_ms >= oldest_ms and not (set(m.label_ids) & HIDDEN_LABELS)
        )
        for owner in members
    }


def calibrated_world(
    generate: Any, target: int, members: Sequence[str], seed: int, now: datetime
) -> tuple[Any, int, int]:
    """A world whose connected mailboxes hold ≈ target in-window copies (within 1 %, or after 3 tries)."""
    per_email = 0.95 / 3 * len(members)  # first guess: ~0.95 in-window copies per email over 3 mailboxes
    size = max(100, round(target / per_email))
    for _ in range(3):
        world = generate(seed=seed, size=size, now=now, org_domain=DOMAIN, members=MEMBERS)
        got = sum(listable_in_window(world, members, now).values())
        if abs(got - target) <= 0.01 * target:
            break
        size = max(100, round(size * target / max(got, 1)))
    return world, size, got


@contextmanager
def store_url(args: argparse.Namespace, base: Path, name: str) -> Iterator[str]:
    """A fresh SQLite file, or a throwaway PostgreSQL schema (dropped afterwards)."""
    if args.store == "sqlite":
        yield f"sqlite:///{base / (name + '.db')}"
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_{name}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in args.pg_url else "?"
    try:
        yield f"{args.pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def rss_mb(usage: Any) -> float:
    return float(usage.ru_maxrss) / 1024  # kilobytes on Linux


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_stack(
    args: argparse.Namespace, base: Path, url: str, world: Any, members: Sequence[str], target: int
) -> dict[str, Any]:
    from sqlalchemy import func, select

    from bench import probe
    from models.tables import (
        Activity,
        Connection,
        Contact,
        Interaction,
        Participant,
        Rejected,
        Sighting,
        SyncState,
    )
    from web.stack import running_stack

    redis_mode = args.broker == "redis"
    probe_dir = base / "probe"
    probe_dir.mkdir()
    overrides: dict[str, Any] = {"database_url": url}
    if redis_mode:
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()
        overrides["broker_url"] = args.redis_url
    else:
        probe.install(probe_dir)
    if args.profile and redis_mode:
        raise SystemExit("--profile profiles the in-process broker's worker threads; use --broker inprocess")
    jobs_profile = JobProfiles() if args.profile else None
    workers: list[subprocess.Popen[bytes]] = []
    with running_stack(
        data_dir=base / "stack", world=world, workers=0 if redis_mode else args.threads, **overrides
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        for email in members:
            stack.connect(ORG, email)
        paused = pause_other_sources(stack)
        if redis_mode:
            env = settings_env(stack.rt.settings) | {probe.ENV: str(probe_dir)}
            workers.append(start_worker(env, args.threads, base / "worker.log"))
            time.sleep(0.5)
        before = stack.sandbox.google.stats_snapshot()
        rss_before = current_rss_mb()
        spy = start_py_spy(args, target)
        cpu_started = time.process_time()  # every thread of this process: sandbox, web app, workers, SQLite
        started = time.monotonic()
        if jobs_profile is None:
            final = stack.sync(timeout=args.timeout)
        else:
            # stack.sync() minus its reconcile pass: under the profiler, page transactions are slow
            # enough that the waiter's own write transaction starves past SQLite's 60 s busy timeout
            # (see README); the chains themselves need no reconcile while no worker dies
            from sync.inprocess import wait_for_chains
            from sync.scheduler import start_all

            start_all(stack.rt)
            final = wait_for_chains(stack.rt, timeout=args.timeout, reconcile_every=float("inf"))
        e2e = time.monotonic() - started
        sync_cpu = time.process_time() - cpu_started
        stop_py_spy(spy)
        after = stack.sandbox.google.stats_snapshot()
        for worker in workers:
            stop_worker(worker)
        if final.failed:
            raise RuntimeError(f"{final.failed} sync streams failed; see {base / 'logs'} and {base / 'worker.log'}")
        calls = {
            k: after["calls"].get(k, 0) - before["calls"].get(k, 0)
            for k in API_KINDS
            if after["calls"].get(k, 0) - before["calls"].get(k, 0)
        }
        quota = after["quota_units"] - before["quota_units"]
        with stack.rt.sessions() as session:

            def count(table: Any) -> int:
                return int(session.execute(select(func.count()).select_from(table)).scalar_one())

            per_connection = dict(
                session.execute(
                    select(Sighting.connection_id, func.count())
                    .join(Connection, Connection.id == Sighting.connection_id)
                    .where(Connection.source == SOURCE)
                    .group_by(Sighting.connection_id)
                ).all()
            )
            pages = int(session.execute(select(func.sum(SyncState.pages_total))).scalar_one() or 0)
            figures = {
                "activities": count(Activity),
                "participants": count(Participant),
                "interactions": count(Interaction),
                "contacts": int(
                    session.execute(
                        select(func.count()).select_from(Contact).where(Contact.status == "active")
                    ).scalar_one()
                ),
                "rejected": count(Rejected),
            }
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    usage_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    intervals = probe.read_intervals(probe_dir)
    synced = sum(per_connection.values())
    min_calls = sum(1 + math.ceil(m / LIST_PAGE) + math.ceil(m / BATCH_PARTS) for m in per_connection.values())
    if spy is not None:
        print_hotspots(spy[1], e2e)
    if jobs_profile is not None:
        jobs_profile.report(Path(args.profile).resolve() / f"gmail_backfill-{args.store}-{target}.pstats", synced)
    return {
        "target": target,
        "store": args.store,
        "broker": args.broker,
        "mailboxes": list(members),
        "paused_other_sources": paused,
        "synced": synced,
        "synced_per_mailbox": sorted(per_connection.values()),
        "pages": pages,
        "calls": calls,
        "api_calls": sum(calls.values()),
        "min_calls": min_calls,
        "quota_units": quota,
        "e2e_seconds": e2e,
        "sync_process_cpu_seconds": sync_cpu,
        "commit_seconds": probe.union_seconds(intervals.get("commit", [])),
        "commit_calls": len(intervals.get("commit", [])),
        "commit_sum_seconds": sum(e - s for s, e, _ in intervals.get("commit", [])),
        "commit_cpu_seconds": sum(c for _, _, c in intervals.get("commit", [])),
        "ingest_seconds": probe.union_seconds(intervals.get("ingest", [])),
        "ingest_cpu_seconds": sum(c for _, _, c in intervals.get("ingest", [])),
        "phase_cpu_seconds": {
            kind: sum(c for _, _, c in intervals.get(kind, [])) for kind in ("fetch", "upsert", "settle")
        },
        "rss_self_mb": rss_mb(usage_self),
        # the largest waited-for descendant: the dramatiq worker processes (py-spy excluded when profiling)
        "rss_children_mb": rss_mb(usage_children) if redis_mode else 0.0,
        "rss_before_sync_mb": rss_before,
        **figures,
    }


def pause_other_sources(stack: Any) -> list[str]:
    """One Google consent may create connections for other Google sources (calendar, contacts): pause
    them, as an operator would, so the run is the Gmail backfill alone."""
    from sqlalchemy import select, update

    from models.tables import Connection

    with stack.rt.sessions.begin() as session:
        others = sorted(set(session.execute(select(Connection.source).where(Connection.source != SOURCE)).scalars()))
        if others:
            session.execute(update(Connection).where(Connection.source != SOURCE).values(status="paused"))
    return others


# -- real dramatiq workers (as tests/pipeline/test_worker_kill.py starts them) ----------------------


def settings_env(settings: Any) -> dict[str, str]:
    """The stack's settings as the SXSYNC_* environment of a separate process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SXSYNC_")}
    for name, value in settings.model_dump().items():
        env[f"SXSYNC_{name.upper()}"] = str(value)
    return env


def start_worker(env: dict[str, str], threads: int, log: Path) -> subprocess.Popen[bytes]:
    """`python -m dramatiq --processes 1 --threads N worker`, plus bench.probe to time the write phase."""
    return subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "--processes", "1", "--threads", str(threads), "worker", "bench.probe"],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """A graceful stop (SIGTERM), waited for, so its peak RSS lands in RUSAGE_CHILDREN."""
    try:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    except ProcessLookupError:
        worker.wait()


# -- raw ceiling ------------------------------------------------------------------------------------


def raw_ceiling(src_url: str, fresh_store: Any, repeats: int) -> dict[str, Any]:
    """The product's activities, sightings and participants, bulk-inserted with plain Core executemany.

    Run `repeats` times into a fresh store each time; the median run (by wall time) is reported.
    """
    from sqlalchemy import select

    from models.db import make_engine
    from models.tables import Activity, Participant, Sighting

    src = make_engine(src_url)
    act_t, sight_t, part_t = Activity.__table__, Sighting.__table__, Participant.__table__
    with src.connect() as conn:
        parents = {
            t: [dict(r) for r in conn.execute(select(t)).mappings()] for t in _parent_tables(act_t, sight_t, part_t)
        }
        activities = {r["id"]: dict(r) for r in conn.execute(select(act_t).order_by(act_t.c.id)).mappings()}
        sightings = [dict(r) for r in conn.execute(select(sight_t).order_by(sight_t.c.id)).mappings()]
        by_sighting: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in conn.execute(select(part_t).order_by(part_t.c.id)).mappings():
            by_sighting[r["sighting_id"]].append(dict(r))
    src.dispose()
    # one transaction per 500 sightings (a product page), each table executemany in batches of 500
    plan: list[Transaction] = []
    done: set[int] = set()
    for chunk in _chunks(sightings, RAW_BATCH):
        acts = []
        for s in chunk:
            if s["activity_id"] not in done:
                done.add(s["activity_id"])
                acts.append(activities[s["activity_id"]])
        parts = [p for s in chunk for p in by_sighting.get(s["id"], ())]
        plan.append([(act_t, acts), (sight_t, list(chunk)), (part_t, parts)])
    rows = sum(len(items) for page in plan for _, items in page)
    seconds, cpu, runs = _median_run(fresh_store, repeats, parents, plan)
    counts = Counter({"activities": sum(len(page[0][1]) for page in plan), "sightings": len(sightings)})
    counts["participants"] = rows - counts["activities"] - counts["sightings"]
    return {
        "raw_seconds": seconds,
        "raw_cpu_seconds": cpu,
        "raw_runs": [round(r[0], 3) for r in runs],
        "raw_rows": rows,
        "raw_counts": dict(counts),
    }


def raw_every_table(src_url: str, fresh_store: Any, repeats: int) -> dict[str, Any]:
    """Every row ingest_page left in the tables it writes, bulk-inserted the same way (a second, wider ceiling).

    One transaction per 500 sightings, as in `raw_ceiling`, holding the activities, copies and participants
    of those sightings and the rows they were the first to need: an identity and its contact with the
    identity's first interaction, an interaction with its activity, a relationship with its contact; person
    records and their keys with the first page, rejections spread evenly. Only inserts: what ingest rewrote
    on later pages (relationships, names, feed numbers) is its normalizing work. Median of `repeats` runs,
    each into a fresh store.
    """
    from sqlalchemy import select

    from models.db import make_engine
    from models.tables import Base

    tables = {t.name: t for t in Base.metadata.sorted_tables}
    src = make_engine(src_url)
    with src.connect() as conn:
        parents = {
            t: [dict(r) for r in conn.execute(select(t)).mappings()]
            for t in _parent_tables(*(tables[name] for name in INGEST_TABLES))
        }
        stored = {
            name: [dict(r) for r in conn.execute(select(tables[name]).order_by(*tables[name].primary_key)).mappings()]
            for name in INGEST_TABLES
        }
    src.dispose()
    pages = max(1, math.ceil(len(stored["sightings"]) / RAW_BATCH))
    page_of = _first_pages(stored, pages)
    plan: list[Transaction] = [[(tables[name], []) for name in INGEST_TABLES] for _ in range(pages)]
    for slot, name in enumerate(INGEST_TABLES):
        for index, row in enumerate(stored[name]):
            page = page_of[name](row) if name in page_of else index * pages // len(stored[name])
            plan[page][slot][1].append(row)
    seconds, cpu, runs = _median_run(fresh_store, repeats, parents, plan)
    return {
        "raw_all_seconds": seconds,
        "raw_all_cpu_seconds": cpu,
        "raw_all_runs": [round(r[0], 3) for r in runs],
        "raw_all_rows": sum(len(rows) for rows in stored.values()),
        "raw_all_counts": {name: len(rows) for name, rows in stored.items() if rows},
    }


def _first_pages(stored: dict[str, list[dict[str, Any]]], pages: int) -> dict[str, Any]:
    """Per table, the page (transaction) that writes a row: the first one that needs it (see raw_every_table)."""
    sighting_page = {s["id"]: i // RAW_BATCH for i, s in enumerate(stored["sightings"])}
    activity_page: dict[int, int] = {}
    for s in stored["sightings"]:
        activity_page.setdefault(s["activity_id"], sighting_page[s["id"]])
    identity_page: dict[int, int] = {}
    for r in stored["interactions"]:
        page = activity_page[r["activity_id"]]
        identity_page[r["identity_id"]] = min(page, identity_page.get(r["identity_id"], page))
    contact_page: dict[int, int] = {}
    for r in stored["identities"]:
        page = identity_page.get(r["id"], pages - 1)
        contact_page[r["contact_id"]] = min(page, contact_page.get(r["contact_id"], page))
    return {
        "activities": lambda r: activity_page.get(r["id"], pages - 1),
        "sightings": lambda r: sighting_page[r["id"]],
        "participants": lambda r: sighting_page[r["sighting_id"]],
        "contacts": lambda r: contact_page.get(r["id"], 0),  # merged and deleted ones: no identity left
        "identities": lambda r: identity_page.get(r["id"], pages - 1),
        "interactions": lambda r: activity_page[r["activity_id"]],
        "relationships": lambda r: contact_page[r["contact_id"]],
        "person_records": lambda r: 0,
        "record_keys": lambda r: 0,
    }


def _median_run(
    fresh_store: Any, repeats: int, parents: dict[Any, list[dict[str, Any]]], plan: list[Transaction]
) -> tuple[float, float, list[tuple[float, float]]]:
    """The plan inserted `repeats` times, each into a fresh store: the median run (by wall time), and all."""
    runs = []
    for i in range(repeats):
        with fresh_store(i) as dst_url:
            runs.append(_raw_insert(dst_url, parents, plan))
    runs.sort()
    seconds, cpu = runs[len(runs) // 2]
    return seconds, cpu, runs


def _raw_insert(dst_url: str, parents: dict[Any, list[dict[str, Any]]], plan: list[Transaction]) -> tuple[float, float]:
    """One timed bulk insert into a fresh, migrated store: (wall seconds, this thread's CPU seconds)."""
    from sqlalchemy import insert

    from models.db import make_engine, upgrade_schema

    dst = make_engine(dst_url)
    upgrade_schema(dst)
    with dst.begin() as conn:  # parents: untimed
        copied: set[Any] = set()
        for table, rows in parents.items():
            # a nullable reference to a table not copied yet (a cycle) is left empty
            dangling = [
                fk.parent.name
                for fk in table.foreign_keys
                if fk.column.table not in copied and fk.column.table is not table and fk.parent.nullable
            ]
            if rows:
                conn.execute(insert(table), [r | dict.fromkeys(dangling) for r in rows])
            copied.add(table)
    cpu = time.thread_time()
    started = time.perf_counter()
    for page in plan:
        with dst.begin() as conn:
            for table, items in page:
                for batch in _chunks(items, RAW_BATCH):
                    conn.execute(insert(table), batch)
    seconds = time.perf_counter() - started
    cpu = time.thread_time() - cpu
    dst.dispose()
    return seconds, cpu


def _parent_tables(*children: Any) -> list[Any]:
    """Every table the children reference, transitively, in dependency order (org, members, …)."""
    from models.tables import Base

    need: set[Any] = set()
    todo = list(children)
    while todo:
        for fk in todo.pop().foreign_keys:
            ref = fk.column.table
            if ref not in need and ref not in children:
                need.add(ref)
                todo.append(ref)
    return [t for t in Base.metadata.sorted_tables if t in need]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- profile (cProfile per page job, py-spy over the process) --------------------------------------


class JobProfiles:
    """cProfile each page job in its own worker thread (Python 3.11: one profiler per thread), timed
    with the thread's CPU clock so GIL waits and a busy machine do not count; merged at the end."""

    def __init__(self) -> None:
        import cProfile
        import threading

        import sync.actors as actors

        self._profiles: list[Any] = []
        self._lock = threading.Lock()
        inner = actors.run_page  # type: ignore[attr-defined]

        def profiled_run_page(*args: Any, **kwargs: Any) -> Any:
            prof = cProfile.Profile(time.thread_time)
            prof.enable()
            try:
                return inner(*args, **kwargs)
            finally:
                prof.disable()
                with self._lock:
                    self._profiles.append(prof)

        actors.run_page = profiled_run_page  # type: ignore[attr-defined]

    def report(self, out: Path, synced: int, top: int = 25) -> None:
        import io
        import pstats

        if not self._profiles:
            print("# no page job was profiled")
            return
        stats = pstats.Stats(self._profiles[0])
        for prof in self._profiles[1:]:
            stats.add(prof)
        out.parent.mkdir(parents=True, exist_ok=True)
        stats.dump_stats(str(out))
        raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
        total = max((ct for (_, _, _, ct, _) in raw.values()), default=0.0)  # run_page's cumulative
        print(
            f"\n# cProfile of {len(self._profiles)} page jobs, thread-CPU timer ({out}): "
            f"{total:.1f} CPU s in jobs = {1000 * total / max(synced, 1):.2f} ms per message"
        )

        def name(key: Any) -> str:
            file, line, func = key
            rel = file.split(str(REPO) + "/", 1)[-1] if str(REPO) in file else file.split("site-packages/", 1)[-1]
            return f"{func} ({rel}:{line})"

        by_cum = sorted(raw.items(), key=lambda kv: kv[1][3], reverse=True)
        print(f"# product functions by cumulative CPU, % of job CPU (top {top}):")
        shown = 0
        for key, (_, ncalls, _, ct, _) in by_cum:
            if name(key).split(" (", 1)[1].startswith(PRODUCT_DIRS):
                print(f"#   {100 * ct / total:5.1f} %  {ncalls:>9,} calls  {name(key)}")
                shown += 1
                if shown == top:
                    break
        print(f"# all functions by own (self) CPU, % of job CPU (top {top}):")
        for key, (_, ncalls, tt, _, _) in sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]:
            print(f"#   {100 * tt / total:5.1f} %  {ncalls:>9,} calls  {name(key)}")
        buf = io.StringIO()
        pstats.Stats(str(out), stream=buf).sort_stats("cumulative").print_stats(60)
        (out.with_suffix(".txt")).write_text(buf.getvalue())


PRODUCT_DIRS = ("sync/", "connectors/", "models/", "tokens/", "web/")


def start_py_spy(args: argparse.Namespace, target: int) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy sampling this process (all threads) during the sync phase only."""
    if not (args.profile and args.py_spy):
        return None
    spy_bin = Path(sys.executable).with_name("py-spy")
    if not spy_bin.exists():
        found = shutil.which("py-spy")
        if found is None:
            raise SystemExit("--profile needs py-spy (pip install py-spy into the venv)")
        spy_bin = Path(found)
    out_dir = Path(args.profile).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"gmail_backfill-{args.store}-{args.broker}-{target}.txt"
    proc = subprocess.Popen(
        [str(spy_bin), "record", "--pid", str(os.getpid()), "--rate", "100", "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # let it attach
    return proc, out


def stop_py_spy(spy: tuple[subprocess.Popen[bytes], Path] | None) -> None:
    if spy is None:
        return
    proc, _ = spy
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _frame_name(frame: str) -> str:
    """`func (path/to/file.py:123)` → `func (file.py)` keeping product paths relative to the repo."""
    if " (" not in frame:
        return frame
    func, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    rel = path.split(str(REPO) + "/", 1)[-1] if str(REPO) in path else path.split("site-packages/", 1)[-1]
    return f"{func} ({rel})"


def _is_product(frame: str) -> bool:
    rel = frame.rpartition(" (")[2]
    return rel.startswith(PRODUCT_DIRS)


def print_hotspots(path: Path, e2e: float, top: int = 12) -> None:
    """Where the sync phase's samples went: product jobs vs the sandbox, and the product's hotspots."""
    if not path.exists():
        print(f"# no profile written to {path}")
        return
    total = job = sandbox = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()  # self time charged to the innermost product frame
    for line in path.read_text().splitlines():
        stack, _, tail = line.rpartition(" ")
        if not tail.isdigit():
            continue
        count = int(tail)
        frames = [_frame_name(f) for f in stack.split(";")]
        total += count
        if any(f.startswith("run_page (sync/pipeline.py") for f in frames):
            job += count
            for f in set(frames):
                if _is_product(f):
                    inclusive[f] += count
            product = [f for f in frames if _is_product(f)]
            leaf = frames[-1]
            own[f"{product[-1] if product else '?'}  →  {leaf}"] += count
        elif any("(sandbox/" in f for f in frames):
            sandbox += count
    if not total:
        print("# empty profile")
        return
    print(f"\n# py-spy profile of the sync phase ({path}); {total} non-idle samples across threads")
    other = total - job - sandbox
    print(
        f"#   product page jobs (run_page): {100 * job / total:.1f} %   sandbox (provider emulator): "
        f"{100 * sandbox / total:.1f} %   other threads (web app, broker, waiters): {100 * other / total:.1f} %"
    )
    print(f"# inclusive, % of product job samples (top {top}):")
    for frame, n in inclusive.most_common(top):
        print(f"#   {100 * n / job:5.1f} %  {frame}")
    print(f"# innermost product frame → leaf frame, % of product job samples (top {top}):")
    for frame, n in own.most_common(top):
        print(f"#   {100 * n / job:5.1f} %  {frame}")


if __name__ == "__main__":
    raise SystemExit(main())


def seed_org(sessions: Any) -> tuple[int, dict[str, int], dict[str, int]]:
    """acme.test, its three reps and their Gmail connections: (org id, member ids, connection ids by mailbox)."""
    from models.tables import Connection, Member, Org

    with sessions.begin() as s:
        org = Org(slug="acme", domains=[DOMAIN], policy={}, feed_seq=0)
        s.add(org)
        s.flush()
        members, conns = {}, {}
        for email in MEMBERS:
            member = Member(org_id=org.id, email=email)
            s.add(member)
            s.flush()
            conn = Connection(org_id=org.id, member_id=member.id, source="gmail", provider="google", account=email)
            s.add(conn)
            s.flush()
            members[email], conns[email] = member.id, conn.id
        return org.id, members, conns
