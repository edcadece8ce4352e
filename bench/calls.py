"""The suite's rows from `bench/streams.py` at connector level: calls per 10,000 records vs the minimum, per source,
and the calls of an unchanged incremental run.

`python -m bench.calls` prints the rows; `bench/streams.py` itself prints the per-stream table they come from.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row, rows_main  # noqa: E402

TARGET = 1.05  # the bar: within 1.05 x the minimum
SIZES = {"quick": 25000, "full": 25000}  # the world stops growing people at 25,000 (bench/README.md)


def rows(size: str) -> list[Row]:
    """One row per source (its worst stream) for calls ÷ minimum; one row for the incremental calls."""
    from bench import streams
    from sandbox.world import generate_world

    args = streams.parse_args(["--size", str(SIZES[size]), "--no-e2e"])
    now = datetime.now(UTC).replace(microsecond=0)
    world = generate_world(seed=args.seed, size=args.size, now=now, org_domain=streams.DOMAIN, members=streams.MEMBERS)
    base = Path(tempfile.mkdtemp(prefix="sxsync-bench-calls-"))
    try:
        results = streams.connector_level(args, world, streams.selected_sources(args), base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out: list[Row] = []
    for source in dict.fromkeys(r.source for r in results):
        mine = [r for r in results if r.source == source]
        broken = [r.name for r in mine if r.error is not None]
        if broken:
            out.append(Row(f"HTTP calls ÷ minimum, {source}", "error", f"≤ {TARGET}", False, ", ".join(broken)))
            continue
        rated = [r for r in mine if r.minimum and r.records]
        # the worst ratio; among equals the stream with the most records (the most telling calls/10k)
        worst = max(rated, key=lambda r: (round(r.calls / r.minimum, 3) if r.minimum else 0.0, r.records), default=None)
        if worst is None or not worst.minimum:
            continue
        ratio = worst.calls / worst.minimum
        mismatch = [r.name for r in mine if r.calls != r.emulator_calls]
        out.append(
            Row(
                f"HTTP calls ÷ minimum, {source} (worst stream)",
                f"{ratio:.2f}",
                f"≤ {TARGET}",
                ratio <= TARGET and not mismatch,
                f"{worst.stream}: {10_000 * worst.calls / worst.records:,.1f} calls/10k, min "
                f"{10_000 * worst.minimum / worst.records:,.1f}"
                + (f"; counters disagree on {', '.join(mismatch)}" if mismatch else ""),
            )
        )
    checked = [r for r in results if r.error is None]
    over = [r for r in checked if r.incremental_calls > r.cursors]
    reread = ", ".join(f"{r.name} {r.incremental_records}" for r in checked if r.incremental_records)
    out.append(
        Row(
            "unchanged incremental run: calls per stream (1 per cursor)",
            f"{len(checked) - len(over)} of {len(checked)} at 1 per cursor",
            "1 per cursor",
            not over,
            ", ".join(f"{r.name} {r.incremental_calls}/{r.cursors}" for r in over)
            + (f"; re-read records: {reread}" if reread else ""),
        )
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    return rows_main(
        rows,
        "python -m bench.calls",
        "The suite's call rows from bench/streams.py (connector level): calls ÷ minimum per source, and an "
        "unchanged incremental run's calls. The per-stream table: python -m bench.streams --no-e2e.",
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
