"""Queue overhead: at most one message per provider page, an unchanged incremental run that writes nothing and
sends only its polls, and the queue's CPU beside the CPU of the records it carries.

One Gmail backfill through real Redis (Dramatiq's broker) and in-process worker threads, then one
incremental run over the unchanged mailbox, counting: messages sent (the runtime's enqueue, wrapped),
page jobs run, pages stored, rows the data tables gained or lost (SQLAlchemy's `after_cursor_execute`
row counts on every table but the sync and ops bookkeeping), and the emulator's HTTP requests. Since
session 6 a job stores up to SXSYNC_READ_AHEAD_PAGES pages (sync/pipeline.py), so messages per page is
well under 1; every message counts, those after a transient error too (until then the row subtracted one
message per job that stored no page, as a retry). The queue's CPU is a separate same-run measurement: N
no-op messages through the same Redis, sent and consumed by a Dramatiq worker in this process, CPU per
message; the page jobs' own CPU is their threads' CPU (`time.thread_time` around the actor's body; the
fetches read ahead run in threads of their own and are not counted, which only makes the ratio stricter).
Issue 8's targets: one message per page, an unchanged run's messages = its polls and rows written = 0,
queue CPU ≤ 5 % of the per-record cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Engine, event

from bench.table import Row, ratio_row, show

BOOKKEEPING = ("sync_states", "ops_samples", "audit_events", "orgs")  # not data: cursors, charts, audit, feed seq
MEMBER = "alice@acme.test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/6"  # a database no test suite uses
SIZES = {"quick": (6000, 2000), "full": (20000, 10000)}  # (world size, no-op messages)


@dataclass(frozen=True)
class Figures:
    """What one run counted."""

    records: int
    pages: int
    backfill_messages: int
    page_jobs: int
    jobs_without_page: int  # ended stale, busy, rate limited … before storing anything
    job_cpu_s: float
    streams: int
    incremental_messages: int
    incremental_rows: int
    incremental_requests: int
    queue_cpu_per_message_s: float


class Counters:
    """Messages sent, page jobs run and their thread CPU, data rows written: thread-safe tallies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.jobs = 0
        self.without_page = 0
        self.job_cpu = 0.0
        self.rows: Counter[str] = Counter()

    def sends(self, enqueue: Callable[[int, str, int, float], None]) -> Callable[[int, str, int, float], None]:
        def counted(connection_id: int, stream: str, version: int, delay: float) -> None:
            with self.lock:
                self.sent += 1
            enqueue(connection_id, stream, version, delay)

        return counted

    def runs(self, run_page: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            cpu = time.thread_time()
            outcome = None
            try:
                outcome = run_page(*args)
                return outcome
            finally:
                with self.lock:
                    self.jobs += 1
                    self.job_cpu += time.thread_time() - cpu
                    self.without_page += outcome is None or outcome.status not in ("committed", "done")

        return timed

    def watch_rows(self, engine: Engine) -> None:
        """Count the rows every INSERT/UPDATE/DELETE on a data table touched."""

        @event.listens_for(engine, "after_cursor_execute")
        def written(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
            words = statement.split(None, 4)
            if not words or words[0].upper() not in ("INSERT", "UPDATE", "DELETE"):
                return
            table = words[2] if words[0].upper() != "UPDATE" else words[1]
            table = table.strip('"')
            if table not in BOOKKEEPING and cursor.rowcount and cursor.rowcount > 0:
                with self.lock:
                    self.rows[table] += cursor.rowcount


def queue_cpu_per_message(redis_url: str, messages: int) -> float:
    """CPU seconds this process spends per no-op message sent to Redis and consumed by a Dramatiq worker."""
    from models.settings import Settings
    from sync.broker import make_broker

    broker = make_broker(redis_url, Settings(broker_url=redis_url))
    assert isinstance(broker, RedisBroker)
    broker.flush_all()
    done = threading.Semaphore(0)

    def noop(n: int) -> None:
        done.release()

    actor: dramatiq.Actor[[int], None] = dramatiq.Actor(noop, broker=broker, actor_name="noop", queue_name="noop",
                                                         priority=0, options={})  # fmt: skip
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        for n in range(50):  # warm: connections, scripts loaded
            actor.send(n)
        for _ in range(50):
            done.acquire()
        cpu = time.process_time()
        for n in range(messages):
            actor.send(n)
        for _ in range(messages):
            done.acquire()
        return (time.process_time() - cpu) / messages
    finally:
        worker.stop()
        broker.flush_all()
        broker.close()


def run(world_size: int, noop_messages: int, redis_url: str, seed: int) -> Figures:
    """The backfill, the unchanged incremental run, and the queue's own CPU, in one process."""
    import sync.actors
    from sandbox.world import generate_world
    from sync.pipeline import run_page
    from web.stack import running_stack

    redis.Redis.from_url(redis_url).flushdb()
    counters = Counters()
    world = generate_world(seed=seed, size=world_size, org_domain="acme.test", members=(MEMBER,))
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(sync.actors, "run_page", counters.runs(run_page)),
        running_stack(data_dir=Path(tmp), world=world, broker_url=redis_url, workers=2) as stack,
    ):
        stack.seed_org("acme", "acme.test", (MEMBER,), {"sources": ["gmail"]})
        stack.connect("acme", MEMBER)
        assert stack.rt.enqueue is not None
        stack.rt.enqueue = counters.sends(stack.rt.enqueue)
        counters.watch_rows(stack.rt.engine)
        backfill = stack.sync(timeout=1800)
        assert backfill.failed == 0, "the backfill failed"
        sent, jobs, cpu, without_page = counters.sent, counters.jobs, counters.job_cpu, counters.without_page
        counters.rows.clear()
        requests = stack.sandbox.google.stats.http_requests
        before = counters.sent
        incremental = stack.sync(timeout=600)
        assert incremental.failed == 0, "the incremental run failed"
        streams = len({(s.connection_id, s.stream) for s in _states(stack)})
        figures = Figures(
            records=backfill.records,
            pages=backfill.pages,
            backfill_messages=sent,
            page_jobs=jobs,
            jobs_without_page=without_page,
            job_cpu_s=cpu,
            streams=streams,
            incremental_messages=counters.sent - before,
            incremental_rows=sum(counters.rows.values()),
            incremental_requests=stack.sandbox.google.stats.http_requests - requests,
            queue_cpu_per_message_s=0.0,
        )
    per_message = queue_cpu_per_message(redis_url, noop_messages)
    return Figures(**{**figures.__dict__, "queue_cpu_per_message_s": per_message})


def _states(stack: Any) -> list[Any]:
    from sqlalchemy import select

    from models.tables import SyncState

    with stack.rt.sessions() as session:
        return list(session.execute(select(SyncState)).scalars())


def table_rows(f: Figures) -> list[Row]:
    """Issue 8's queue rows from one run's figures."""
    per_page = f.backfill_messages / f.pages
    cpu_per_record = f.job_cpu_s / f.records
    queue_per_record = f.queue_cpu_per_message_s * f.backfill_messages / f.records
    rows = [
        ratio_row("queue messages per stored page (backfill)", per_page, 1.0,
                  note=f"{f.backfill_messages} messages, {f.page_jobs} jobs ({f.jobs_without_page} stored no page), "
                  f"{f.pages} pages, {f.records:,} records"),
        Row("unchanged incremental run: messages beyond the polls", str(f.incremental_messages - f.streams), "0",
            f.incremental_messages == f.streams, f"{f.incremental_messages} messages for {f.streams} stream polls"),
        Row("unchanged incremental run: data rows written", str(f.incremental_rows), "0", f.incremental_rows == 0,
            f"{f.incremental_requests} Gmail requests for {f.streams} stream cursor(s)"),
        ratio_row("queue CPU ÷ per-record CPU", queue_per_record / cpu_per_record, 0.05,
                  note=f"queue {f.queue_cpu_per_message_s * 1e6:.0f} µs/message; page jobs "
                  f"{cpu_per_record * 1e6:.0f} µs/record ({f.job_cpu_s:.1f} s CPU)", fmt=".3f"),
    ]  # fmt: skip
    return [Row(**{**r.__dict__, "bench": "queue_overhead"}) for r in rows]


def rows(size: str) -> list[Row]:
    """The suite's rows (bench/table.py convention)."""
    world_size, noop = SIZES[size]
    return table_rows(run(world_size, noop, DEFAULT_REDIS, seed=7))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(SIZES), default="quick", help="quick or full (default: quick)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help=f"Redis, flushed first (default: {DEFAULT_REDIS})")
    parser.add_argument("--seed", type=int, default=7, help="world seed (default: 7)")
    parser.add_argument("--rows", action="store_true", help="print BENCH-ROW lines instead of the table")
    args = parser.parse_args(argv)
    world_size, noop = SIZES[args.size]
    found = table_rows(run(world_size, noop, args.redis_url, args.seed))
    show(found, as_rows=args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
