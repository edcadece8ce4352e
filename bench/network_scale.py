"""Network-scale benchmark: one incremental page of 100 new activities into networks of N contacts.

DESIGN.md / issue 4 ("Tests and measure"): an incremental sync of 100 new activities into a network of
100,000 contacts must do work that scales with the change, not the network. For each size N the bench:

1. builds a store (fresh SQLite file or throwaway PostgreSQL schema) holding an org with 3 members and
   N external contacts, entirely through the product's write path `sync.ingest.ingest_page`, in pages
   of 500 observations: each external person sends one email to one member (pages rotate over the
   members' Gmail connections), and one person in 100 also writes from a personal address that an
   address-book `PersonObservation` ties to their work address (two contacts merged into one, so the
   network holds N active contacts). The build is timed separately;
2. measures `--repeats` incremental pages (default 3, each different) of 100 new activities — half
   from new people, half from existing contacts — plus 3 address-book records, each tying two
   existing contacts (a merge), as ONE `ingest_page` call in one transaction on alice's connection
   (the same pages at every size: which contacts a page names decides how far the identity walk goes):
   wall time, thread CPU time, SQL statements executed and rows written (`cursor.rowcount` summed
   over INSERT/UPDATE/DELETE, counted with SQLAlchemy's `before/after_cursor_execute` events), and
   the contacts republished in the feed (`IngestStats.contacts_published`).

The table gives the medians per size and the ratio largest ÷ smallest size (≈ 1 when the work
scales with the change). Below it, the statements whose time grew most between the sizes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.gmail_backfill import DOMAIN, MEMBERS  # noqa: E402

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PAGE = 500
TIE_EVERY = 100  # one person in TIE_EVERY also mails from a personal address, tied by an address-book entry
COMPANIES = 2000
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
WRITES = ("INSERT", "UPDATE", "DELETE")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.network_scale",
        description=(
            "An incremental page of 100 new activities (+3 address-book ties) through ingest_page into "
            "networks of N contacts: time, CPU, statements, rows written and contacts republished per size, "
            "and the ratio largest / smallest size (the work must scale with the change, not the network)."
        ),
    )
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated network sizes (default: 10000,100000)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite", help="store (default: sqlite)")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help=f"PostgreSQL admin URL (default: {PG_ADMIN_URL})")
    parser.add_argument("--repeats", type=int, default=3, help="incremental pages measured per size (default: 3)")
    parser.add_argument("--new", type=int, default=100, help="activities in the incremental page (default: 100)")
    parser.add_argument("--ties", type=int, default=3, help="tying address-book records in it (default: 3)")
    parser.add_argument("--top", type=int, default=6, help="statements listed below the table (default: 6)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------------------------------
# store, counters
# --------------------------------------------------------------------------------------------------


class SqlCounter:
    """Statements, rows written, and time per statement text, while `on` is set."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.on = False
        self.reset()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def reset(self) -> None:
        self.statements = 0
        self.rows_written = 0
        self.by_sql: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])  # calls, seconds, rows

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if not self.on:
            return
        elapsed = time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        self.statements += 1
        rows = cursor.rowcount if cursor.rowcount and cursor.rowcount > 0 else 0
        written = statement.lstrip().upper().startswith(WRITES)
        if written:
            self.rows_written += rows
        entry = self.by_sql[" ".join(statement.split())[:150]]
        entry[0] += 1
        entry[1] += elapsed
        entry[2] += rows if written else 0


# --------------------------------------------------------------------------------------------------
# synthetic observations
# --------------------------------------------------------------------------------------------------


def work(i: int) -> str:
    return f"p{i}@co{i % COMPANIES}.test"


def personal(i: int) -> str:
    return f"p{i}.home@gmail.com"


def mail(ext: str, sender: str, member: str, name: str | None, days_ago: float) -> Any:
    from connectors.base import ActivityObservation, Participant

    return ActivityObservation(
        source="gmail",
        external_id=ext,
        kind="email",
        dedupe_key=f"<{ext}@bench.mid>",
        occurred_at=NOW - timedelta(days=days_ago),
        participants=(Participant("from", sender, name), Participant("to", member)),
    )


def tie(ext: str, name: str, *emails: str) -> Any:
    from connectors.base import PersonObservation

    return PersonObservation("google_contacts", ext, name, tuple(emails))


def build_pages(n: int) -> Iterator[tuple[int, list[Any]]]:
    """(member index, observations) pages of ≈ PAGE that leave N active contacts."""
    for page_no, start in enumerate(range(0, n, PAGE)):
        member = page_no % len(MEMBERS)
        obs: list[Any] = []
        for i in range(start, min(n, start + PAGE)):
            obs.append(mail(f"b{i}", work(i), MEMBERS[member], f"Person {i}", 1 + i % 300))
            if i % TIE_EVERY == 0:
                obs.append(mail(f"h{i}", personal(i), MEMBERS[member], None, 2 + i % 300))
                obs.append(tie(f"people/c{i}", f"Person {i}", work(i), personal(i)))
        yield member, obs


def incremental_page(rep: int, args: argparse.Namespace, rng: random.Random) -> list[Any]:
    """`args.new` new activities to alice, half from new people, half from existing ones, + ties.

    The same pages for every size: the existing people are drawn from those the smallest network
    holds too, and the new ones from beyond the largest, so sizes differ only in the network around.
    """
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    smallest, largest = min(sizes), max(sizes)
    obs: list[Any] = []
    fresh = args.new // 2
    for k in range(fresh):
        i = largest + rep * args.new + k  # nobody the network has seen
        obs.append(mail(f"r{rep}n{k}", work(i), MEMBERS[0], f"Person {i}", 0.5))
    for k, i in enumerate(rng.sample(range(smallest), args.new - fresh)):
        obs.append(mail(f"r{rep}e{k}", work(i), MEMBERS[0], None, 0.5))
    for k in range(args.ties):  # two existing contacts (never tied before) become one person
        a, b = rng.sample([i for i in rng.sample(range(smallest), 20) if i % TIE_EVERY], 2)
        obs.append(tie(f"people/r{rep}t{k}", f"Person {a}", work(a), work(b)))
    return obs


# --------------------------------------------------------------------------------------------------
# one size
# --------------------------------------------------------------------------------------------------


def run_size(args: argparse.Namespace, base: Path, n: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from bench.gmail_backfill import seed_org, store_url
    from models.db import make_engine, upgrade_schema, write_session_factory
    from models.policy import StrengthPolicy
    from models.tables import Contact
    from sync.ingest import IngestTarget, ingest_page
    from sync.interactions import OrgView

    with store_url(args, base, f"net{n}") as url:
        engine = make_engine(url)
        upgrade_schema(engine)
        sessions = write_session_factory(engine)
        org_id, members, conns = seed_org(sessions)
        view = OrgView(frozenset({DOMAIN}), members)

        def target(member: str) -> IngestTarget:
            return IngestTarget(org_id, view, conns[member], "messages", 1, StrengthPolicy())

        t0 = time.perf_counter()
        last = t0
        for page_no, (member, obs) in enumerate(build_pages(n)):
            with sessions.begin() as s:
                ingest_page(s, target(MEMBERS[member]), obs, [], NOW)
            if time.perf_counter() - last > 15:
                last = time.perf_counter()
                done = min(n, (page_no + 1) * PAGE)
                print(f"#   {args.store} {n:,}: built {done:,} contacts, {last - t0:.0f} s", file=sys.stderr)
        build_s = time.perf_counter() - t0
        with sessions() as s:
            active = s.execute(
                select(func.count()).select_from(Contact).where(Contact.org_id == org_id, Contact.status == "active")
            ).scalar_one()

        counter = SqlCounter(engine)
        rng = random.Random(args.seed)
        runs: list[dict[str, Any]] = []
        for rep in range(args.repeats):
            page = incremental_page(rep, args, rng)
            counter.reset()
            counter.on = True
            w0, c0 = time.perf_counter(), time.thread_time()
            with sessions.begin() as s:
                stats = ingest_page(s, target(MEMBERS[0]), page, [], NOW)
            wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
            counter.on = False
            runs.append(
                {
                    "ms": wall * 1000,
                    "cpu_ms": cpu * 1000,
                    "statements": counter.statements,
                    "rows": counter.rows_written,
                    "published": stats.contacts_published,
                    "by_sql": dict(counter.by_sql),
                }
            )
        engine.dispose()

    med = {k: statistics.median(r[k] for r in runs) for k in ("ms", "cpu_ms", "statements", "rows", "published")}
    # per statement: the median run's figures (by wall time)
    median_run = sorted(runs, key=lambda r: r["ms"])[len(runs) // 2]
    return {"size": n, "active": active, "build_s": build_s, **med, "by_sql": median_run["by_sql"]}


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    cols = [
        ("size", "{:,}", "size"),
        ("active contacts", "{:,}", "active"),
        ("build s", "{:.1f}", "build_s"),
        ("incr ms", "{:.1f}", "ms"),
        ("CPU ms", "{:.1f}", "cpu_ms"),
        ("statements", "{:.0f}", "statements"),
        ("rows written", "{:.0f}", "rows"),
        ("contacts published", "{:.0f}", "published"),
    ]
    rows = [[fmt.format(r[key]) for _, fmt, key in cols] for r in results]
    if len(results) > 1:
        lo, hi = results[0], results[-1]
        ratio = [f"{hi['size'] / lo['size']:.0f}x", "", f"{hi['build_s'] / lo['build_s']:.2f}"]
        for _, _, key in cols[3:]:
            ratio.append(f"{hi[key] / lo[key]:.2f}" if lo[key] else "-")
        rows.append(ratio)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (h, _, _) in enumerate(cols)]
    print(f"\nstore: {args.store}; incremental page: {args.new} new activities + {args.ties} ties, "
          f"median of {args.repeats}")  # fmt: skip
    print("  ".join(h.rjust(w) for (h, _, _), w in zip(cols, widths, strict=True)))
    for i, r in enumerate(rows):
        if len(results) > 1 and i == len(rows) - 1:
            print("  ".join("-" * w for w in widths))
            r[0] = f"ratio {r[0]}"
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    if len(results) > 1:
        lo, hi = results[0]["by_sql"], results[-1]["by_sql"]
        grown = sorted(hi, key=lambda k: hi[k][1] - lo.get(k, [0, 0.0, 0])[1], reverse=True)[: args.top]
        print(f"\nstatements by time added between {results[0]['size']:,} and {results[-1]['size']:,} "
              "(calls, ms small → large):")  # fmt: skip
        for key in grown:
            a, b = lo.get(key, [0, 0.0, 0]), hi[key]
            print(f"  {a[0]:>4} → {b[0]:<4} {a[1] * 1000:8.1f} → {b[1] * 1000:8.1f} ms   {key}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp:
        for n in sizes:
            print(f"# {args.store} {n:,}: building the network through ingest_page …", file=sys.stderr, flush=True)
            results.append(run_size(args, Path(tmp), n))
    print_table(results, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
