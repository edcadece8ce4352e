"""Scale out: 4 worker processes against 1 on a latency-bound provider, on Redis and on RabbitMQ (issue 8:
200 connections synced with no duplicate work, ≥ 3x the 1-process throughput at 100 ms emulated latency).

Per broker, two runs of the same sync on a fresh store: `--processes` real `python -m dramatiq worker`
processes of `--threads` threads each, then one process of `--threads` threads. Each run: the sandbox (no TLS:
the emulator shares this process's CPU with the web app, and TLS handshakes would be its largest cost), a
throwaway PostgreSQL schema, `--reps` reps in `--orgs` orgs (the same world, the same domain), each rep
connecting Gmail through the real consent flow (about 40 messages a mailbox), and the Google emulator answering
every request after `--latency-ms`. The timed part: from the moment every connection's stream is due
(`sync.scheduler.start_all`) until every chain has finished in the store, the workers already running.

Why several orgs (default 20 of 10 reps): the pages of one org serialize on the org's write lock (DESIGN: one
writer per org network), so one org's sync is bound by its store writes, never by provider latency, and more
processes cannot speed it up. At 200 reps in ONE org it is worse than serial: the world's org-wide emails have
a copy in every mailbox, and each page re-derives its activities from every copy stored so far (the settle
step reads ~copies x participants rows), so a page costs 0.1 s at first and 20 s after 100 mailboxes
(`--orgs 1` shows it; see docs/performance.md). 200 connections over 20 orgs is the latency-bound case the
target names. Other Google sources are left out for the same reason: a Calendar or Contacts page stores
thousands of records.

  throughput      records stored per second (and connections finished per second)
  speed-up        the N-process run's throughput ÷ the 1-process run's
  duplicate work  Gmail API calls no stored page accounts for (the emulator's count minus the sync states'
                  `api_calls_total`, which only a committed page adds to: a fetch whose page was thrown away
                  and fetched again shows here), plus calls and messages fetched (batch parts) beyond the
                  1-process run's (the same world is paged the same way)
  x minimum       Gmail calls ÷ the connector's minimum (context): per mailbox 1 getProfile, the listing pages
                  (the first holds 50 ids, FIRST_PAGE_MAX, then 500) and one batch per 100 ids of each

RabbitMQ runs in a vhost of its own (`--amqp-url`, default vhost `sxsync-bench`, which must exist:
`rabbitmqctl add_vhost sxsync-bench; rabbitmqctl set_permissions -p sxsync-bench guest '.*' '.*' '.*'`), so no
other suite's `sync` queue is touched; Redis database 15 is flushed before each run. Progress and each run's
phase times (stack, consents, workers ready, sync) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DOMAIN = "acme.test"
REDIS_URL = "redis://127.0.0.1:6379/15"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/sxsync-bench"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GMAIL_API = ("profile", "list", "batch", "get", "history")
SOURCES = ("gmail",)
NOT_API = ("authorize", "token", "revoke", "userinfo", "batch_parts")  # OAuth and counters that are not calls
SPEED_UP_TARGET = 3.0
QUICK = ["--reps", "80", "--orgs", "8"]
FULL = ["--reps", "200", "--orgs", "20"]


@dataclass
class Run:
    """One timed sync."""

    broker: str
    processes: int
    threads: int
    connections: int
    records: int
    seconds: float
    calls: dict[str, int]  # Google API calls by endpoint kind
    messages_fetched: int  # batch parts: messages.get inside batches
    committed_calls: int  # API calls of the pages that were stored (sync states' api_calls_total)
    gmail_minimum: int
    failed: int
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase of the run (context)

    @property
    def throughput(self) -> float:
        return self.records / self.seconds

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def gmail_calls(self) -> int:
        return sum(self.calls.get(k, 0) for k in GMAIL_API)

    @property
    def uncommitted(self) -> int:
        """Calls no stored page accounts for: fetched by a page job whose page was not kept."""
        return self.gmail_calls - self.committed_calls

    def extra_over(self, other: Run) -> int:
        """Calls and fetched messages beyond another run's of the same world, kind by kind."""
        calls = sum(max(0, n - other.calls.get(k, 0)) for k, n in self.calls.items())
        return calls + max(0, self.messages_fetched - other.messages_fetched)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale_out",
        description=(
            "N worker processes against 1 syncing many Gmail connections on a latency-bound emulator, on Redis "
            "and RabbitMQ: throughput, speed-up, duplicate work."
        ),
    )
    parser.add_argument("--reps", type=int, default=200, help="reps, one Gmail connection each (default: 200)")
    parser.add_argument("--orgs", type=int, default=20, help="orgs the reps are spread over (default: 20)")
    parser.add_argument("--size", type=int, default=15, help="world size per rep: ~40 messages a mailbox (15)")
    parser.add_argument("--latency-ms", type=float, default=100, help="emulated latency per request (default 100)")
    parser.add_argument("--processes", type=int, default=4, help="worker processes of the scaled run (default: 4)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker process (default: 2)")
    parser.add_argument("--brokers", default="redis,rabbitmq", help="comma-separated: redis, rabbitmq (both)")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis, flushed first (default: {REDIS_URL})")
    parser.add_argument("--amqp-url", default=AMQP_URL, help=f"RabbitMQ, its own vhost (default: {AMQP_URL})")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help=f"PostgreSQL admin URL (default: {PG_ADMIN_URL})")
    parser.add_argument("--seed", type=int, default=7, help="world seed (default: 7)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed for one sync (default: 900)")
    parser.add_argument("--json", action="store_true", help="also print each run's figures as one JSON line")
    return parser.parse_args(argv)


def minimum_calls(per_mailbox: Sequence[int]) -> int:
    """The Gmail calls the connector's full pass needs per mailbox of M listable messages in the window:
    1 getProfile, its listing pages (the first FIRST_PAGE_MAX ids, then pages of 500) and a batch per 100
    ids of each listing page. (Listing past the window's edge is not counted: a few calls short at most.)"""
    from connectors.gmail import FIRST_PAGE_MAX, LIST_PAGE_MAX

    total = 0
    for m in per_mailbox:
        rest = max(0, m - FIRST_PAGE_MAX)
        pages = (
            [min(m, FIRST_PAGE_MAX)]
            + [LIST_PAGE_MAX] * (rest // LIST_PAGE_MAX)
            + [rest % LIST_PAGE_MAX] * bool(rest % LIST_PAGE_MAX)
        )
        total += 1 + len(pages) + sum(math.ceil(n / 100) for n in pages)
    return total


def org_of(index: int, reps: int, orgs: int) -> str:
    """The org of the index-th rep: consecutive blocks of reps ÷ orgs."""
    return f"acme{index * orgs // reps:02d}"


def wait_ready(logs: Sequence[Path], timeout: float = 120) -> None:
    """Until every worker process said it is ready (its imports and broker connection done)."""
    deadline = time.monotonic() + timeout
    while not all(p.exists() and "ready for action" in p.read_text(errors="replace") for p in logs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not start: see {logs}")
        time.sleep(0.2)


@contextmanager
def phase(phases: dict[str, float], name: str) -> Iterator[None]:
    """Time one phase of a run into `phases`."""
    started = time.monotonic()
    try:
        yield
    finally:
        phases[name] = time.monotonic() - started


def run(args: argparse.Namespace, broker: str, processes: int) -> Run:
    import redis

    from bench.gmail_backfill import listable_in_window, settings_env, start_worker, stop_worker, store_url
    from sandbox.world import generate_world
    from sync.inprocess import wait_for_chains
    from sync.logs import configure_logging
    from sync.scheduler import start_all
    from web.stack import running_stack

    phases: dict[str, float] = {}
    now = datetime.now(UTC).replace(microsecond=0)
    members = tuple(f"rep{i:03d}@{DOMAIN}" for i in range(args.reps))
    world = generate_world(seed=args.seed, size=args.size * args.reps, now=now, org_domain=DOMAIN, members=members)
    per_mailbox = list(listable_in_window(world, members, now).values())
    base = Path(tempfile.mkdtemp(prefix=f"sxsync-bench-scale-{broker}-{processes}-"))
    configure_logging("INFO", base / "logs", stderr=False)
    url = args.redis_url if broker == "redis" else args.amqp_url
    if broker == "redis":
        redis.Redis.from_url(url).flushdb()
    store = argparse.Namespace(store="postgresql", pg_url=args.pg_url)
    try:
        with (
            phase(phases, "stack"),
            store_url(store, base, "scale") as db_url,
            running_stack(
                data_dir=base / "stack", world=world, workers=0, tls=False, database_url=db_url, broker_url=url
            ) as stack,
        ):
            stack.broker.flush_all()  # RabbitMQ: a run's queue starts empty
            for k in range(args.orgs):
                org = org_of(k * args.reps // args.orgs, args.reps, args.orgs)
                mine = tuple(m for i, m in enumerate(members) if org_of(i, args.reps, args.orgs) == org)
                stack.seed_org(org, DOMAIN, mine, {"sources": list(SOURCES)})
            with phase(phases, "consents"), ThreadPoolExecutor(8) as pool:  # as 200 reps would click through
                list(pool.map(lambda i: stack.connect(org_of(i, args.reps, args.orgs), members[i]), range(args.reps)))
            google = stack.sandbox.google
            google.faults.configure({"latency_ms": args.latency_ms})
            env = settings_env(stack.rt.settings)
            logs = [base / f"worker{i}.log" for i in range(processes)]
            with phase(phases, "workers"):
                workers = [start_worker(env, args.threads, log) for log in logs]
            try:
                with phase(phases, "workers"):
                    wait_ready(logs)
                before = google.stats_snapshot()["calls"]
                started = time.monotonic()
                start_all(stack.rt)
                final = wait_for_chains(stack.rt, timeout=args.timeout)
                seconds = time.monotonic() - started
                after = google.stats_snapshot()["calls"]
            finally:
                with phase(phases, "stop"):
                    for worker in workers:
                        stop_worker(worker)
            calls = {k: n - before.get(k, 0) for k, n in after.items() if k not in NOT_API and n - before.get(k, 0)}
            fetched = after.get("batch_parts", 0) - before.get("batch_parts", 0)
            connections, records, committed = _stored(stack)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    phases["sync"] = seconds
    print(
        f"# {broker}, {processes} x {args.threads} threads: "
        + ", ".join(f"{name} {s:.1f} s" for name, s in phases.items()),
        file=sys.stderr,
        flush=True,
    )
    return Run(
        broker, processes, args.threads, connections, records, seconds, calls, fetched, committed,
        minimum_calls(per_mailbox), final.failed, phases,
    )  # fmt: skip


def _stored(stack: Any) -> tuple[int, int, int]:
    """(connections, records stored by their streams, API calls of the stored pages)."""
    from sqlalchemy import func, select

    from models.tables import Connection, SyncState

    with stack.rt.sessions() as session:
        connections = session.execute(select(func.count()).select_from(Connection)).scalar_one()
        records, calls = session.execute(
            select(
                func.coalesce(func.sum(SyncState.records_total), 0),
                func.coalesce(func.sum(SyncState.api_calls_total), 0),
            )
        ).one()
    return int(connections), int(records), int(calls)


def measure(args: argparse.Namespace) -> list[tuple[Run, Run]]:
    pairs = []
    for broker in [b.strip() for b in args.brokers.split(",") if b.strip()]:
        if broker not in ("redis", "rabbitmq"):
            raise SystemExit(f"unknown broker {broker!r} (redis, rabbitmq)")
        print(f"# scale out on {broker}: {args.processes} processes …", file=sys.stderr, flush=True)
        scaled = run(args, broker, args.processes)
        print(f"# scale out on {broker}: 1 process …", file=sys.stderr, flush=True)
        single = run(args, broker, 1)
        pairs.append((single, scaled))
    return pairs


def duplicates(single: Run, scaled: Run) -> int:
    """Duplicate work of a pair: calls no stored page accounts for, and calls or messages beyond 1 process."""
    return single.uncommitted + scaled.uncommitted + scaled.extra_over(single)


def report(pairs: Sequence[tuple[Run, Run]], args: argparse.Namespace) -> None:
    print(
        f"\nScale out — {args.reps} Gmail connections in {args.orgs} orgs, {args.latency_ms:g} ms latency, "
        f"{args.threads} threads per process, PostgreSQL; target ≥ {SPEED_UP_TARGET:g}x, no duplicate work"
    )
    head = ("broker", "processes", "records", "sync s", "rec/s", "conn/s", "speed-up", "API calls", "x min",
            "not stored", "extra vs 1", "failed")  # fmt: skip
    rows = []
    for single, scaled in pairs:
        for r in (single, scaled):
            rows.append(
                (
                    r.broker,
                    str(r.processes),
                    f"{r.records:,}",
                    f"{r.seconds:.1f}",
                    f"{r.throughput:,.0f}",
                    f"{r.connections / r.seconds:.1f}",
                    f"{r.throughput / single.throughput:.2f}x",
                    f"{r.api_calls:,}",
                    f"{r.gmail_calls / r.gmail_minimum:.3f}",
                    str(r.uncommitted),
                    str(r.extra_over(single)),
                    str(r.failed),
                )
            )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def rows(size: str) -> list[Any]:
    """The suite's rows (bench/table.py): the speed-up and the duplicate work, per broker."""
    from bench.table import Row

    args = parse_args(FULL if size == "full" else QUICK)
    pairs = measure(args)
    report(pairs, args)
    out = []
    for single, scaled in pairs:
        speed_up = scaled.throughput / single.throughput
        note = (
            f"{scaled.connections} connections in {args.orgs} orgs, {args.latency_ms:g} ms, "
            f"{scaled.threads} threads per process; sync {single.seconds:.0f} s vs {scaled.seconds:.0f} s"
        )
        out.append(
            Row(f"scale out on {single.broker}: {scaled.processes} processes ÷ 1", f"{speed_up:.2f}x",
                f"≥ {SPEED_UP_TARGET:g}x", speed_up >= SPEED_UP_TARGET and not (single.failed or scaled.failed), note)
        )  # fmt: skip
        dup = duplicates(single, scaled)
        calls = (
            f"{single.api_calls} and {scaled.api_calls} calls, {scaled.gmail_calls / scaled.gmail_minimum:.3f} x min"
        )
        out.append(Row(f"scale out on {single.broker}: duplicate API calls", str(dup), "0", dup == 0, calls))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pairs = measure(args)
    report(pairs, args)
    if args.json:
        for single, scaled in pairs:
            for r in (single, scaled):
                print(
                    json.dumps(asdict(r) | {"throughput": r.throughput, "speed_up": r.throughput / single.throughput})
                )
    return 0 if all(not (a.failed or b.failed) for a, b in pairs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
