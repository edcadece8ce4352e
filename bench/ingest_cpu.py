"""normalize + store alone: a generated Gmail backfill replayed through `ingest_page`, against a raw insert.

No HTTP, no queue, no worker threads: the sandbox world's messages are rendered as the Gmail API's
metadata resources and mapped by the connector (`map_message`), in pages of 500 per mailbox (newest
first, as a full pass lists them), and each page is written by `sync.ingest.ingest_page` in its own
transaction with the opt-out filter on, as `sync.pipeline._commit` does. Measured: the thread CPU of
`ingest_page` per message, split into its copies and settle halves; then two raw ceilings, each into fresh
stores: `bench.gmail_backfill.raw_ceiling` (the rows it stored in activities, sightings and participants,
Core executemany, one transaction per 500 sightings: the suite's memory row) and `raw_every_table` (every row
it stored, in every table it writes, the same way), and the ratios raw ÷ ingest. Last, every page is ingested
again: the rows that second pass writes (0 when ingest is idempotent).

As a suite module (`rows`): 3,000 messages (full: 10,000) on SQLite and on PostgreSQL.

The ingest pass runs `--repeats` times, each into a fresh store (the median is used).
`--profile FILE` writes a cProfile of the first ingest pass and prints its hotspots.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.gmail_backfill import (  # noqa: E402
    BACKFILL_DAYS,
    DOMAIN,
    MEMBERS,
    PG_ADMIN_URL,
    raw_ceiling,
    raw_every_table,
    seed_org,
    store_url,
)
from bench.table import Row, ratio_row  # noqa: E402

PAGE = 500
SIZES = {"quick": 3000, "full": 10000}  # messages, for the suite's rows
TARGET = 0.85  # issue 8: normalize + store ≥ 0.85 x the raw bulk insert rate of the same rows
SECRET = b"bench-ingest-cpu-suppression-key"
Page = tuple[str, list[Any], list[Any]]  # (mailbox, observations, rejections)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest_cpu",
        description=(
            "A generated Gmail backfill replayed through ingest_page (pages of 500, no HTTP or queue): its thread "
            "CPU per message vs a raw Core executemany of the rows it stores, and the rows a second pass writes."
        ),
    )
    parser.add_argument("--messages", type=int, default=3000, help="≈ messages across the mailboxes (default: 3000)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite", help="store (default: sqlite)")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help=f"PostgreSQL admin URL (default: {PG_ADMIN_URL})")
    parser.add_argument("--seed", type=int, default=7, help="world seed (default: 7)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="ingest passes, each into a fresh store, median used (default: 3)"
    )
    parser.add_argument("--raw-repeats", type=int, default=3, help="raw-ceiling runs, median used (default: 3)")
    parser.add_argument("--profile", metavar="FILE", default=None, help="cProfile the ingest pass into FILE")
    return parser.parse_args(argv)


def gmail_pages(messages: int, seed: int, now: datetime) -> list[Page]:
    """Pages of ≤ 500 mapped messages per mailbox, newest first, the mailboxes taking turns."""
    from connectors.gmail import METADATA_HEADERS
    from connectors.gmail_mapping import map_message
    from sandbox.gmail import message_resource
    from sandbox.mailbox import HIDDEN_LABELS, Mailbox
    from sandbox.world import generate_world

    world = generate_world(seed=seed, size=round(messages / 0.95), now=now, org_domain=DOMAIN, members=MEMBERS)
    oldest_ms = (now - timedelta(days=BACKFILL_DAYS)).timestamp() * 1000
    per_box: list[list[Page]] = []
    for owner in MEMBERS:
        box = Mailbox(owner, world.mailboxes[owner])
        entries = sorted(
            (
                e
                for e in box.entries.values()
                if e.msg.internal_date_ms >= oldest_ms and not set(e.label_ids) & HIDDEN_LABELS
            ),
            key=lambda e: (-e.msg.internal_date_ms, e.msg.id),
        )
        pages: list[Page] = []
        for start in range(0, len(entries), PAGE):
            observations: list[Any] = []
            rejections: list[Any] = []
            for entry in entries[start : start + PAGE]:
                mapped = map_message(message_resource(entry, "metadata", METADATA_HEADERS))
                if mapped.observation is not None:
                    observations.append(mapped.observation)
                rejections.extend(mapped.rejections)
            pages.append((owner, observations, rejections))
        per_box.append(pages)
    return [page for turn in zip_longest_pages(per_box) for page in turn]


def zip_longest_pages(per_box: list[list[Page]]) -> list[list[Page]]:
    """Round robin over the mailboxes' pages."""
    longest = max((len(p) for p in per_box), default=0)
    return [[pages[i] for pages in per_box if i < len(pages)] for i in range(longest)]


def ingest_pass(sessions: Any, org_id: int, conns: dict[str, int], pages: list[Page], now: datetime) -> float:
    """Every page through ingest_page, one transaction each; the thread CPU spent inside ingest_page."""
    from models.tables import Org
    from sync.ingest import ingest_page, target_for

    cpu = 0.0
    for owner, observations, rejections in pages:
        with sessions.begin() as s:
            target = target_for(
                s, s.get_one(Org, org_id), connection_id=conns[owner], stream="messages", generation=1,
                suppression_secret=SECRET,
            )  # fmt: skip
            started = time.thread_time()
            ingest_page(s, target, observations, rejections, now)
            cpu += time.thread_time() - started
    return cpu


def phase_timers() -> dict[str, float]:
    """Wrap ingest's two halves with thread-CPU accumulators (as bench/probe.py does in the product)."""
    import functools

    import sync.ingest as ingest

    spent = {"upsert": 0.0, "settle": 0.0}
    for attr, kind in (("_upsert_copies", "upsert"), ("_settle", "settle")):
        func = getattr(ingest, attr)

        def timed(*args: Any, _func: Any = func, _kind: str = kind, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return _func(*args, **kwargs)
            finally:
                spent[_kind] += time.thread_time() - started

        setattr(ingest, attr, functools.wraps(func)(timed))
    return spent


def rows_written(engine: Any) -> list[int]:
    """A counter of rows INSERTed, UPDATEd or DELETEd through the engine (a one-item list, mutated)."""
    from sqlalchemy import event

    written = [0]

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) and (cursor.rowcount or 0) > 0:
            written[0] += cursor.rowcount

    event.listen(engine, "after_cursor_execute", after)
    return written


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import func, select

    from models.db import make_engine, upgrade_schema, write_session_factory
    from models.tables import Sighting

    now = datetime.now(UTC).replace(microsecond=0)
    pages = gmail_pages(args.messages, args.seed, now)
    spent = phase_timers()
    runs: list[tuple[float, float, float]] = []  # (ingest, copies, settle) CPU seconds per fresh store
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for rep in range(args.repeats):
            with store_url(args, Path(tmp), f"ingest{rep}") as url:
                engine = make_engine(url)
                upgrade_schema(engine)
                sessions = write_session_factory(engine)
                org_id, _, conns = seed_org(sessions)
                spent.update(upsert=0.0, settle=0.0)
                profiler = cProfile.Profile(time.thread_time) if args.profile and rep == args.repeats - 1 else None
                if profiler is not None:
                    profiler.enable()
                ingest_cpu = ingest_pass(sessions, org_id, conns, pages, now)
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(args.profile)
                runs.append((ingest_cpu, spent["upsert"], spent["settle"]))
                if rep < args.repeats - 1:
                    engine.dispose()
                    continue
                with sessions() as s:
                    synced = int(s.execute(select(func.count()).select_from(Sighting)).scalar_one())
                written = rows_written(engine)
                again_cpu = ingest_pass(sessions, org_id, conns, pages, now)
                engine.dispose()
                raw = raw_ceiling(url, lambda i: store_url(args, Path(tmp), f"raw{i}"), args.raw_repeats)
                raw |= raw_every_table(url, lambda i: store_url(args, Path(tmp), f"all{i}"), args.raw_repeats)
    ingest_cpu, upsert_cpu, settle_cpu = sorted(runs)[len(runs) // 2]
    return {
        "store": args.store,
        "pages": len(pages),
        "synced": synced,
        "ingest_cpu_seconds": ingest_cpu,
        "upsert_cpu_seconds": upsert_cpu,
        "settle_cpu_seconds": settle_cpu,
        "ingest_runs": [round(r[0], 3) for r in runs],
        "again_cpu_seconds": again_cpu,
        "again_rows_written": written[0],
        **raw,
    }


def summary(r: dict[str, Any]) -> str:
    """One line of figures per message."""
    per = {k: 1000 * v / r["synced"] for k, v in r.items() if k.endswith("cpu_seconds")}
    return (
        f"{r['store']}: {r['synced']:,} messages in {r['pages']} pages; CPU ms/message: ingest "
        f"{per['ingest_cpu_seconds']:.3f} (copies {per['upsert_cpu_seconds']:.3f}, settle "
        f"{per['settle_cpu_seconds']:.3f}; runs {r['ingest_runs']} s), raw insert {per['raw_cpu_seconds']:.3f}, "
        f"raw insert of every table {per['raw_all_cpu_seconds']:.3f}; raw ÷ ingest "
        f"{r['raw_cpu_seconds'] / r['ingest_cpu_seconds']:.2f}, every table ÷ ingest "
        f"{r['raw_all_cpu_seconds'] / r['ingest_cpu_seconds']:.2f}; second pass "
        f"{per['again_cpu_seconds']:.3f} ms/message, {r['again_rows_written']} rows written"
    )


def rows(size: str) -> list[Row]:
    """The suite's rows: ingest vs each raw ceiling on SQLite and PostgreSQL, and the second pass's writes."""
    out: list[Row] = []
    again = []
    for store, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        r = run(parse_args(["--messages", str(SIZES[size]), "--store", store]))
        print("# " + summary(r), file=sys.stderr, flush=True)
        note = f"{label}, {r['synced']:,} messages, ingest_page alone (no queue)"
        for key, what in (
            ("raw_cpu_seconds", "activities, sightings, participants"),
            ("raw_all_cpu_seconds", "every table it writes"),
        ):
            measure = f"normalize + store ÷ raw insert of {what}, CPU ({label})"
            out.append(ratio_row(measure, r[key] / r["ingest_cpu_seconds"], TARGET, at_most=False, note=note))
        again.append(r["again_rows_written"])
    out.append(
        Row("the same pages ingested again: rows written", str(sum(again)), "0", sum(again) == 0, "SQLite + PostgreSQL")
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(summary(run(args)))
    if args.profile:
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
