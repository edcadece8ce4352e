"""One row of the `make bench` table, and how rows travel between a bench's process and the suite's.

The convention every bench module follows to join the table (bench/README.md, "The suite"):

    def rows(size: str) -> list[Row]        # size is "quick" (make bench, ~10 min in all) or "full"

The suite (`bench/suite.py`) runs each module's `rows` in a fresh process (`python -m bench.suite --one
MODULE --size S`), which prints each row as one `BENCH-ROW {json}` line; the suite reads them back.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

PREFIX = "BENCH-ROW "


@dataclass(frozen=True)
class Row:
    """One measure: its figure (a count or ratio from one run), the issue's target, and pass/miss.

    `ok` is None when the measure has no pass/miss (context, or the bench could not run); `note` says why
    in a few words, and `bench` names the module that measured it.
    """

    measure: str
    figure: str
    target: str
    ok: bool | None
    note: str = ""
    bench: str = ""

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "MISS", None: "—"}[self.ok]

    def line(self) -> str:
        return PREFIX + json.dumps(asdict(self))

    @classmethod
    def parse(cls, line: str) -> Row:
        return cls(**json.loads(line[len(PREFIX) :]))


def emit(rows: Iterable[Row]) -> None:
    """Print rows as `BENCH-ROW` lines (what `--rows` / the suite's child process prints)."""
    for row in rows:
        print(row.line(), flush=True)


def show(rows: Sequence[Row], *, as_rows: bool) -> None:
    """A module's output: BENCH-ROW lines for the suite (`--rows`), else the table."""
    if as_rows:
        emit(rows)
    else:
        print(render(rows))


def render(rows: Sequence[Row]) -> str:
    """The one table: measure, figure, target, pass/miss (and the note, when there is one)."""
    head = ("measure", "figure", "target", "pass/miss", "bench", "note")
    body = [(r.measure, r.figure, r.target, r.verdict, r.bench, r.note) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    widths[-1] = len(head[-1])  # the note runs free at the end of the line
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
    return "\n".join(lines)


def ratio_row(
    measure: str, value: float, target: float, *, at_most: bool = True, note: str = "", fmt: str = ".2f"
) -> Row:
    """A ratio against a bound: `≤ target` (at_most) or `≥ target`."""
    ok = value <= target if at_most else value >= target
    return Row(measure, f"{value:{fmt}}", f"{'≤' if at_most else '≥'} {target:{fmt}}", ok, note)


def rows_main(rows: Callable[[str], list[Row]], prog: str, description: str, argv: Sequence[str] | None = None) -> int:
    """The command line of a module that only makes rows: `--size quick|full`, `--rows` for BENCH-ROW lines."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--size", choices=("quick", "full"), default="quick", help="quick or full (default: quick)")
    parser.add_argument("--rows", action="store_true", help="print BENCH-ROW lines instead of the table")
    args = parser.parse_args(argv)
    found = rows(args.size)
    show(found, as_rows=args.rows)
    return 0
