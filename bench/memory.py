"""Gmail backfill rows: the worker's peak RSS at 10x the messages, quota units vs the minimum, normalize + store
vs a raw bulk insert — all from one `bench/gmail_backfill.py` run with real dramatiq worker processes on Redis.

Issue 8: "memory: peak RSS of a 100,000-message backfill ≤ 1.10 x that of 10,000"; "quota units per 10,000
Gmail messages ≤ 1.02 x minimum"; "normalize + store ≥ 0.85 x the same-run raw SQLAlchemy bulk-upsert rate".

Why the worker process: with `--broker redis` the sandbox (which holds the whole generated world, so grows
with N by design) and the web app stay in the bench's process, and the product's page jobs run in one
`dramatiq worker` process (`--processes 1`) whose peak RSS is the product's own. Each size runs in a fresh
process (`--child N`: gmail_backfill's `run_one` with its Redis worker), and the worker's peak is read from
`/proc/<pid>/status` (`VmHWM`, the high-water mark of its resident set) as the sync ends, just before the
worker is stopped. Not `ru_maxrss` through RUSAGE_CHILDREN (gmail_backfill's `rss_children_mb`): Linux keeps
a process's high-water mark across exec, so a child forked from the bench's big process reports the parent's
RSS at the fork (the same figure as gmail_backfill's "RSS before sync"), not its own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import memtrace  # noqa: E402
from bench.table import Row, show  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/14"  # this suite's database (flushed by gmail_backfill)
SIZES = {"quick": (3000, 30000), "full": (10000, 100000)}
RSS_TARGET = 1.10
QUOTA_TARGET = 1.02
INGEST_TARGET = 0.85
UNITS = {"profile": 1, "list": 5, "get": 5}  # Gmail's quota units per method (sandbox.google_state.QUOTA_UNITS)
NATIVE = (  # bench/memtrace.py's figures, what each says
    ("VmHWM", "peak resident set"),
    ("VmRSS", "resident set"),
    ("VmRSS_trimmed", "resident set after malloc_trim(0): glibc's free pages given back"),
    ("heap_in_use", "glibc heap handed out (Python objects, SQLite, C libraries)"),
    ("heap_free", "glibc heap free but kept (fragmentation)"),
    ("sqlite", "SQLite's own allocations (page caches, prepared statements, schemas)"),
    ("sqlite_peak", "SQLite's allocations at their peak"),
    ("python", "live Python allocations (tracemalloc)"),
    ("python_peak", "Python allocations at their peak (tracemalloc)"),
)


def backfill(size: int, trace: Path | None = None, python: bool = False) -> dict[str, Any]:
    """One size in a fresh process: gmail_backfill's figures plus the worker's peak RSS (`worker_hwm_mb`)."""
    traced = [*(["--trace", str(trace)] if trace else []), *(["--python"] if python else [])]
    cmd = [sys.executable, "-m", "bench.memory", "--child", str(size), *traced]
    print(f"# memory: {size:,} messages in a fresh process …", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
    found = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"bench.memory --child {size} failed (exit {proc.returncode}): {proc.stdout[-1500:]}")
    result: dict[str, Any] = json.loads(found[-1])
    return result


def status_mb(pid: int) -> dict[str, float]:
    """A live process's memory lines of /proc/<pid>/status in MB: VmHWM (peak RSS), VmRSS and its split into
    RssAnon (heap: Python objects, SQLite's page caches), RssFile (mapped files) and RssShmem (shared memory,
    e.g. SQLite's WAL index). Empty if it is gone."""
    wanted = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) / 1024 for k, _, v in (line.partition(":") for line in lines) if k in wanted}


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return found


def child(size: int, trace: Path | None, python: bool) -> dict[str, Any]:
    """gmail_backfill's run_one for one size, its worker's peak RSS read as the sync ends (and, with `trace`,
    the worker's native memory sampled through the run and, with `python`, a tracemalloc snapshot of it taken
    as the sync ends: bench/memtrace.py)."""
    from bench import gmail_backfill

    if trace is not None:
        trace.mkdir(parents=True, exist_ok=True)
        (trace / "sitecustomize.py").write_text("import bench.memtrace  # noqa: F401\n")
        # the worker inherits this process's environment (gmail_backfill.settings_env)
        os.environ |= {memtrace.ENV: str(trace), "PYTHONPATH": f"{trace}:{REPO}"}
        if python:
            os.environ["PYTHONTRACEMALLOC"] = "1"
    peaks: dict[str, float] = {}
    split: dict[str, float] = {}  # the worker's /proc status lines as the sync ends
    stop = gmail_backfill.stop_worker

    def read_then_stop(worker: subprocess.Popen[bytes]) -> None:
        # the dramatiq master (small: it only forks) and its worker process(es), where the jobs ran
        workers = children(worker.pid)
        peaks["master"] = status_mb(worker.pid).get("VmHWM", 0.0)
        largest = max((status_mb(pid) for pid in workers), key=lambda s: s.get("VmHWM", 0.0), default={})
        peaks["worker"] = largest.get("VmHWM", 0.0)
        split.update(largest)
        if trace is not None:
            (trace / "take").write_text("")
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not all((trace / f"done-{pid}").exists() for pid in workers):
                time.sleep(0.5)
        stop(worker)

    gmail_backfill.stop_worker = read_then_stop
    args = gmail_backfill.parse_args(["--broker", "redis", "--redis-url", REDIS_URL, "--raw-repeats", "1"])
    result = gmail_backfill.run_one(args, size)
    peak = {"worker_hwm_mb": peaks.get("worker", 0.0), "master_hwm_mb": peaks.get("master", 0.0)}
    return result | peak | {"worker_status_mb": split}


def worker_native(directory: Path) -> dict[str, float]:
    """The worker process's figures as the sync ended (bench/memtrace.py's done file with the largest peak:
    the master only forks)."""
    found = [json.loads(done.read_text()) for done in directory.glob("done-*")]
    return max(found, key=lambda d: d.get("VmHWM", 0.0), default={})


def compare_native(small: Path, big: Path) -> None:
    """The worker's memory as the sync ended, by kind, at both sizes."""
    lo, hi = worker_native(small), worker_native(big)
    print(f"# the worker as the sync ended, MB: {small.name} → {big.name}")
    for key, what in NATIVE:
        if key in lo or key in hi:
            print(f"#   {key:<14} {lo.get(key, math.nan):8.1f} → {hi.get(key, math.nan):8.1f}   {what}")


def compare_traces(small: Path, big: Path, top: int = 25) -> None:
    """The allocations still live at the sync's end that grew most from the small run to the big one."""
    import tracemalloc

    def worker_snapshot(directory: Path) -> tracemalloc.Snapshot:
        # the largest snapshot is the worker process's (the master only forks)
        path = max(directory.glob("snapshot-*.bin"), key=lambda p: p.stat().st_size)
        return tracemalloc.Snapshot.load(str(path))

    lo, hi = worker_snapshot(small), worker_snapshot(big)
    for group in ("filename", "lineno"):
        stats = hi.compare_to(lo, group)
        total = sum(s.size_diff for s in stats)
        print(f"\n# live allocations grown from {small.name} to {big.name}, by {group}: {total / 2**20:+.1f} MB in all")
        for stat in stats[:top]:
            frame = stat.traceback[0]
            where = frame.filename.split(str(REPO) + "/", 1)[-1].split("site-packages/", 1)[-1]
            print(
                f"#   {stat.size_diff / 2**20:+8.2f} MB  {stat.size / 2**20:8.2f} MB  {stat.count_diff:+9,} blocks  "
                f"{where}" + (f":{frame.lineno}" if group == "lineno" else "")
            )


def minimum_units(per_mailbox: Sequence[int]) -> int:
    """Per mailbox with M messages: getProfile + ⌈M/500⌉ messages.list + M messages.get."""
    return sum(UNITS["profile"] + UNITS["list"] * max(1, math.ceil(m / 500)) + UNITS["get"] * m for m in per_mailbox)


def split_mb(result: dict[str, Any]) -> str:
    """The worker's resident memory as the sync ended, by kind."""
    status = result.get("worker_status_mb", {})
    return "/".join(f"{status.get(k, float('nan')):.0f}" for k in ("RssAnon", "RssFile", "RssShmem"))


def rows(size: str) -> list[Row]:
    small, big = SIZES[size]
    lo, hi = backfill(small), backfill(big)
    rss = hi["worker_hwm_mb"] / lo["worker_hwm_mb"]
    # "per 10,000 messages": the smallest run of at least that many (each mailbox's last batch reads past the
    # backfill window to find its end, a fixed cost per mailbox that a smaller run over-weighs)
    per = lo if lo["synced"] >= 10_000 else hi
    units = per["quota_units"] / minimum_units(per["synced_per_mailbox"])
    ingest_cpu = lo["raw_cpu_seconds"] / lo["ingest_cpu_seconds"]
    ingest_wall = lo["raw_seconds"] / lo["ingest_seconds"]
    return [
        Row(
            f"Gmail backfill peak RSS (worker): {big:,} ÷ {small:,} messages",
            f"{rss:.2f}",
            f"≤ {RSS_TARGET:.2f}",
            rss <= RSS_TARGET,
            f"{lo['worker_hwm_mb']:.0f} → {hi['worker_hwm_mb']:.0f} MB; at the end anon/file/shmem "
            f"{split_mb(lo)} → {split_mb(hi)} MB",
        ),
        Row(
            f"Gmail quota units ÷ minimum ({per['synced']:,} messages)",
            f"{units:.3f}",
            f"≤ {QUOTA_TARGET:.2f}",
            units <= QUOTA_TARGET,
            f"{per['quota_units']:,} units; calls {per['api_calls']} = {per['api_calls'] / per['min_calls']:.3f} x min",
        ),
        Row(
            f"normalize + store ÷ raw bulk insert, CPU (SQLite, {lo['synced']:,} messages)",
            f"{ingest_cpu:.2f}",
            f"≥ {INGEST_TARGET:.2f}",
            ingest_cpu >= INGEST_TARGET,
            f"wall {ingest_wall:.2f}; e2e {lo['synced'] / lo['e2e_seconds']:,.0f} msg/s",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory",
        description=(
            "Gmail backfill through the product with a real dramatiq worker on Redis db 14 at two sizes (quick: 3k "
            "and 30k; full: 10k and 100k), each in a fresh process: the worker's peak RSS ratio, quota units vs "
            "the minimum, normalize + store vs a raw insert. --trace: where the worker's memory grew."
        ),
    )
    parser.add_argument("--size", choices=("quick", "full"), default="quick", help="quick or full (default: quick)")
    parser.add_argument("--rows", action="store_true", help="print BENCH-ROW lines instead of the table")
    parser.add_argument(
        "--trace",
        metavar="DIR",
        default=None,
        help="at --sizes: the worker's native memory by kind (glibc heap, SQLite, after malloc_trim) as the sync "
        "ends, sampled every 2 s into DIR/size-N/samples-PID.jsonl, and how it grew between the sizes",
    )
    parser.add_argument(
        "--python", action="store_true", help="with --trace: also the worker's Python allocations (tracemalloc, slow)"
    )
    parser.add_argument("--sizes", default="2000,20000", help="with --trace: two sizes (default: 2000,20000)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, Path(args.trace) if args.trace else None, args.python)), flush=True)
        return 0
    if args.trace:
        small, big = (int(s) for s in args.sizes.split(","))
        base = Path(args.trace).resolve()
        for n in (small, big):
            traced = backfill(n, base / f"size-{n}", args.python)
            print(f"# {n:,}: worker peak {traced['worker_hwm_mb']:.0f} MB (traced)", flush=True)
        compare_native(base / f"size-{small}", base / f"size-{big}")
        if args.python:
            compare_traces(base / f"size-{small}", base / f"size-{big}")
        return 0
    found = rows(args.size)
    show(found, as_rows=args.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
