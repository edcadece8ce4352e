"""`make bench`: every bench module's rows, each module in a fresh process, printed as ONE table.

A module joins the table by exposing `rows(size: str) -> list[bench.table.Row]` (bench/README.md, "The
suite"); `size` is "quick" (the whole suite fits in about 10 minutes on the 2-core dev box) or "full" (the
issue's sizes). A module that is not there yet (another engineer's, in progress) shows as a row saying so.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import PREFIX, Row, emit, render  # noqa: E402

# (module, what it measures when it is missing), in table order
MODULES: tuple[tuple[str, str], ...] = (
    ("calls", "HTTP calls per 10,000 records vs the provider minimum"),
    ("memory", "Gmail backfill: peak RSS, quota units, normalize + store vs raw"),
    ("first_data", "time to first data vs the quota-imposed minimum"),
    ("scheduler", "scheduler tick over 10,000 connections"),
    ("network", "incremental page into a 10x larger network"),
    ("ingest_cpu", "normalize + store alone vs raw inserts (SQLite, PostgreSQL)"),
    ("peers", "tap-hubspot vs ours on the same HubSpot emulator"),
    ("queue_overhead", "queue overhead: messages per page, queue CPU vs per-record CPU"),
    ("quota", "quota use during a backfill, throttled responses"),
    ("scale_out", "scale out: 4 worker processes vs 1"),
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.suite",
        description=(
            "Run every bench module (each in a fresh process) and print one table: measure, figure, target, "
            "pass/miss. Modules join by exposing rows(size) -> list[Row] (bench/README.md)."
        ),
    )
    parser.add_argument(
        "--size",
        choices=("quick", "full"),
        default="quick",
        help="quick: the suite in about 10 minutes here (make bench); full: the issue's sizes (default: quick)",
    )
    parser.add_argument(
        "--only", default="", help=f"comma-separated modules (default: all of {', '.join(m for m, _ in MODULES)})"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds allowed for one module's process (default: 1800)"
    )
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child: print one module's rows
    return parser.parse_args(argv)


def run_module(name: str, size: str, timeout: float) -> list[Row]:
    """One module's rows from a fresh process; its stderr (progress) passes through."""
    if importlib.util.find_spec(f"bench.{name}") is None:
        return [Row(dict(MODULES).get(name, name), "not run", "", None, f"bench/{name}.py is not there yet", name)]
    started = time.monotonic()
    print(f"# bench.{name} ({size}) …", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.suite", "--one", name, "--size", size],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [Row(dict(MODULES).get(name, name), "timed out", "", None, f"over {timeout:.0f} s", name)]
    rows = [Row.parse(line) for line in proc.stdout.splitlines() if line.startswith(PREFIX)]
    print(f"# bench.{name}: {len(rows)} rows in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    if proc.returncode != 0 or not rows:
        tail = " | ".join(line for line in proc.stdout.splitlines()[-3:] if not line.startswith(PREFIX))
        note = f"exit {proc.returncode} {tail}"[:160]
        rows.append(Row(dict(MODULES).get(name, name), "failed", "", None, note, name))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one is not None:
        module = importlib.import_module(f"bench.{args.one}")
        emit(r if r.bench else Row(**{**r.__dict__, "bench": args.one}) for r in module.rows(args.size))
        return 0
    wanted = [m.strip() for m in args.only.split(",") if m.strip()] or [m for m, _ in MODULES]
    started = time.monotonic()
    rows = [row for name in wanted for row in run_module(name, args.size, args.timeout)]
    print()
    print(f"make bench — size {args.size}, {time.monotonic() - started:.0f} s")
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
