"""The suite's rows from `bench/network_scale.py`: an incremental page into a 10x larger network, same work?

`python -m bench.network_scale` prints the full table (and the statements that grew); this module runs
its `run_size` for two sizes (quick: 5,000 and 50,000 contacts; full: 10,000 and 100,000, SQLite) and turns
the ratio largest ÷ smallest into rows: statements and rows written are counts (target ≤ 1.05: the work
scales with the change, not the network); thread CPU is given for context.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row, rows_main  # noqa: E402

SIZES = {"quick": (5000, 50000), "full": (10000, 100000)}
TARGET = 1.05


def rows(size: str) -> list[Row]:
    from bench import network_scale

    small, big = SIZES[size]
    args = network_scale.parse_args(["--sizes", f"{small},{big}"])
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        results = []
        for n in (small, big):
            print(f"# network: building {n:,} contacts through ingest_page …", file=sys.stderr, flush=True)
            results.append(network_scale.run_size(args, Path(tmp), n))
    lo, hi = results
    grow = f"{big // small}x network"
    out = []
    for key, what in (("statements", "SQL statements"), ("rows", "rows written")):
        ratio = hi[key] / lo[key]
        out.append(
            Row(
                f"incremental page (100 new + 3 ties), {what}: {grow}",
                f"{ratio:.2f}",
                f"≤ {TARGET}",
                ratio <= TARGET,
                f"{lo[key]:.0f} → {hi[key]:.0f} (SQLite, {small:,} → {big:,} contacts)",
            )
        )
    cpu = hi["cpu_ms"] / lo["cpu_ms"]
    out.append(
        Row(
            f"incremental page, thread CPU: {grow}",
            f"{cpu:.2f}",
            "≈ 1 (context)",
            None,
            f"{lo['cpu_ms']:.0f} → {hi['cpu_ms']:.0f} ms, median of {args.repeats}",
        )
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    return rows_main(
        rows,
        "python -m bench.network",
        "The suite's rows from bench/network_scale.py: one incremental page into networks of 5k and 50k (quick) "
        "or 10k and 100k (full) contacts on SQLite; statements and rows written, largest ÷ smallest.",
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
