"""An observer outside the product's process: counts a connection's stored sightings in a SQLite store.

bench/first_data.py runs the whole product (sandbox, web app, worker threads) in one Python process. A
counter in that process shares its GIL: each of its SQLite calls waits up to the switch interval (5 ms)
to get the GIL back from a busy worker thread, so a 10 ms poll noticed a stored page 10-20 ms late. This
process polls the store's file read-only every `--interval` seconds and prints `MONOTONIC COUNT` (Linux's
CLOCK_MONOTONIC, the same clock as the parent's `time.monotonic()`) each time the count changes, and exits
once it reaches `--first` (or after `--timeout`). It prints `ready` first, once the store is open.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Sequence


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.store_watch",
        description="Print `MONOTONIC COUNT` each time a connection's stored sightings change (SQLite, read-only).",
    )
    parser.add_argument("path", help="the SQLite store's file")
    parser.add_argument("connection_id", type=int, help="the connection whose sightings are counted")
    parser.add_argument("--first", type=int, default=50, help="exit once the count reaches this (default: 50)")
    parser.add_argument("--interval", type=float, default=0.001, help="seconds between counts (default: 0.001)")
    parser.add_argument("--timeout", type=float, default=120, help="give up after this many seconds (default: 120)")
    return parser.parse_args(argv)


def watch(args: argparse.Namespace) -> int:
    store = sqlite3.connect(f"file:{args.path}?mode=ro", uri=True, isolation_level=None)
    query = "SELECT count(*) FROM sightings WHERE connection_id = ?"
    print("ready", flush=True)
    ends, count = time.monotonic() + args.timeout, -1
    while time.monotonic() < ends:
        now = store.execute(query, (args.connection_id,)).fetchone()[0]
        if now != count:
            count = now
            print(f"{time.monotonic():.6f} {count}", flush=True)
            if count >= args.first:
                return 0
        time.sleep(args.interval)
    return 1


if __name__ == "__main__":
    sys.exit(watch(parse_args()))
