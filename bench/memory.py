"""Gmail backfill rows: the worker's peak RSS at 10x the messages, quota units vs the minimum, normalize + store
vs a raw bulk insert — all from one `bench/gmail_backfill.py` run with real dramatiq worker processes on Redis.

Issue 8: "memory: peak RSS of a 100,000-message backfill ≤ 1.10 x that of 10,000"; "quota units per 10,000
Gmail messages ≤ 1.02 x minimum"; "normalize + store ≥ 0.85 x the same-run raw SQLAlchemy bulk-upsert rate".

Why the worker process: with `--broker redis` the sandbox (which holds the whole generated world, so grows
with N by design) and the web app stay in the bench's process, and the product's page jobs run in one
`dramatiq worker` subprocess whose `ru_maxrss` is the product's own peak (gmail_backfill's `rss_children_mb`).
Each size runs in a fresh process (gmail_backfill does that), so each peak is its own.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row, rows_main  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/14"  # this suite's database (flushed by gmail_backfill)
SIZES = {"quick": (5000, 50000), "full": (10000, 100000)}
RSS_TARGET = 1.10
QUOTA_TARGET = 1.02
INGEST_TARGET = 0.85
UNITS = {"profile": 1, "list": 5, "get": 5}  # Gmail's quota units per method (sandbox.google_state.QUOTA_UNITS)


def backfill(sizes: Sequence[int]) -> list[dict[str, Any]]:
    """gmail_backfill's per-size results (its --json lines), Redis broker, one raw-ceiling run per size."""
    cmd = [
        sys.executable, "-m", "bench.gmail_backfill", "--broker", "redis", "--redis-url", REDIS_URL,
        "--sizes", ",".join(str(s) for s in sizes), "--raw-repeats", "1", "--json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(results) != len(sizes):
        raise RuntimeError(f"bench.gmail_backfill failed (exit {proc.returncode}): {proc.stdout[-1500:]}")
    return results


def minimum_units(per_mailbox: Sequence[int]) -> int:
    """Per mailbox with M messages: getProfile + ⌈M/500⌉ messages.list + M messages.get."""
    return sum(UNITS["profile"] + UNITS["list"] * max(1, math.ceil(m / 500)) + UNITS["get"] * m for m in per_mailbox)


def rows(size: str) -> list[Row]:
    small, big = SIZES[size]
    lo, hi = backfill((small, big))
    rss = hi["rss_children_mb"] / lo["rss_children_mb"]
    units = lo["quota_units"] / minimum_units(lo["synced_per_mailbox"])
    ingest_cpu = lo["raw_cpu_seconds"] / lo["ingest_cpu_seconds"]
    ingest_wall = lo["raw_seconds"] / lo["ingest_seconds"]
    return [
        Row(
            f"Gmail backfill peak RSS (worker): {big:,} ÷ {small:,} messages",
            f"{rss:.2f}",
            f"≤ {RSS_TARGET:.2f}",
            rss <= RSS_TARGET,
            f"{lo['rss_children_mb']:.0f} → {hi['rss_children_mb']:.0f} MB; bench process (sandbox, world) "
            f"{lo['rss_self_mb']:.0f} → {hi['rss_self_mb']:.0f} MB",
        ),
        Row(
            f"Gmail quota units ÷ minimum ({lo['synced']:,} messages)",
            f"{units:.3f}",
            f"≤ {QUOTA_TARGET:.2f}",
            units <= QUOTA_TARGET,
            f"{lo['quota_units']:,} units; calls {lo['api_calls']} = {lo['api_calls'] / lo['min_calls']:.3f} x min",
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
    return rows_main(
        rows,
        "python -m bench.memory",
        "Gmail backfill through the product with a real dramatiq worker on Redis db 14, at two sizes (quick: 5k "
        "and 50k; full: 10k and 100k): the worker's peak RSS ratio, quota units vs the minimum, ingest vs raw.",
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
