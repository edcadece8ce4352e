"""Quota use during a backfill: how much of the emulator's per-user ceiling the workers spend, and how often
they are throttled (issue 8: ≥ 90 % of the ceiling, throttled responses ≤ 1 % of calls).

Per provider (Gmail, HubSpot), the whole product as it is deployed: the sandbox (TLS) and web app in this
process, Redis (database 14, the suite's, flushed; `--redis-url` for another) as the broker, PostgreSQL (a
throwaway schema) as the store, and `--processes` real `python -m dramatiq worker` processes of `--threads`
threads each. The emulator enforces its per-user ceiling:

  gmail    `--gmail-quota` units per user per second (default 250, Gmail's documented figure) with a 2 s
           burst (Gmail's "moving average, allows short bursts": one batch of 100 messages.get is 500
           units); getProfile 1, messages.list 5, messages.get 5 per batch part. The reps' mailboxes
           hold ≈ `--messages` listable messages in all.
  hubspot  HubSpot's documented limits per account: CRM searches `--hubspot-search` per second (default 5;
           no rate-limit headers), every other call 100 per 10 s (TEN_SECONDLY_ROLLING, a sliding window,
           announced in X-HubSpot-RateLimit-*); one rep connected: its six streams share one account.
           Searches are the backfill's binding limit (about 4 in 5 calls), so quota use is the searches'.
  hubspot-fetch  the same world, limits and budget (Redis), but no product: one thread per stream fetches
           its pages back to back and stores nothing - what the shared budget alone lets through. Set
           beside the backfill's figure it tells the budget from the store: on the 2-core dev box the
           budget reaches 96-98 % here; the backfill did too once pages were read ahead while stored
           (session 6; 56-82 % before, store-bound).

What bounded the HubSpot backfill until session 6 (`--timeline` shows it): a stream fetched its next page only
after storing this one, and the contacts stream holds 30 of the run's 56 searches, three to a page, so its
chain (its searches, its 9 stores, each job's start) decided the end while the budget idled during each of
its stores: 56-82 %. Since session 6 a page job reads the next page ahead while it stores one
(sync/pipeline.py, SXSYNC_READ_AHEAD_PAGES), and the run reaches 97-99 %, as the budget alone does. Tried
before that and measured: the stream with the most pages left first on the searches (44-66 %), storing
without the org lock (66-71 %, concurrent stores failed and were fetched again), contacts pages of 1,000
(68-77 %).

What the emulator served and refused is read inside the emulator (this process wraps its counters): per
account, the units served (Gmail quota units; HubSpot calls) between the first and the last served call,
and the calls it refused for the ceiling (a Gmail batch part counts as one call, as Google bills it).

  quota use       served units ÷ (ceiling rate x seconds from the first to the last served call), per
                  account (HubSpot: searches only); the figure is the lowest account's (the initial burst
                  counts, so a short run can pass 100 %)
  throttled       refused calls ÷ (served + refused calls), all accounts

The figures before the shared budget: run this file from a checkout of the commit before it, e.g.
`git archive fd68b48^ | tar -x -C /tmp/before && cp bench/quota.py /tmp/before/bench/ && cd /tmp/before &&
/work/main/.venv/bin/python -m bench.quota` (bench/README.md has the numbers).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ORG = "acme"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
REDIS_URL = "redis://127.0.0.1:6379/14"  # the suite's database (bench/memory.py); 15 is gmail_backfill's
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HUBSPOT_WINDOW_MS = 10_000
HUBSPOT_BURST = 100  # calls per 10 s, Free/Starter
GMAIL_BURST_SECONDS = 2.0
USE_TARGET = 0.90
FETCH_ONLY = "hubspot (fetch only)"
THROTTLED_TARGET = 0.01


@dataclass
class Meter:
    """What the emulator served (time, account, units) and refused (per account), recorded inside it."""

    served: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    refused: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, account: str, units: float) -> None:
        with self.lock:
            self.served[account].append((time.monotonic(), units))

    def refuse(self, account: str) -> None:
        with self.lock:
            self.refused[account] += 1


@dataclass
class Result:
    """One provider's run."""

    provider: str
    ceiling: float  # units per second per account
    accounts: dict[str, dict[str, float]]
    refused: int
    served_calls: int
    seconds: float
    failed: int

    @property
    def use(self) -> float:
        return min((a["use"] for a in self.accounts.values()), default=float("nan"))

    @property
    def throttled(self) -> float:
        total = self.served_calls + self.refused
        return self.refused / total if total else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "ceiling_per_second": self.ceiling,
            "quota_use": self.use,
            "throttled_share": self.throttled,
            "served_calls": self.served_calls,
            "refused_calls": self.refused,
            "sync_seconds": self.seconds,
            "failed_streams": self.failed,
            "accounts": self.accounts,
        }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quota",
        description=(
            "Quota use during a Gmail and a HubSpot backfill by several worker processes on Redis + PostgreSQL "
            "against the emulator's enforced per-user ceiling: share of the ceiling used, share of calls throttled."
        ),
    )
    parser.add_argument(
        "--providers",
        default="gmail,hubspot,hubspot-fetch",
        help="comma-separated: gmail, hubspot, hubspot-fetch (HubSpot's pages fetched with nothing stored: the "
        "budget alone) (default: all three)",
    )
    parser.add_argument("--processes", type=int, default=2, help="dramatiq worker processes (default: 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process (default: 4)")
    parser.add_argument(
        "--messages", type=int, default=3000, help="Gmail: listable messages over the 3 mailboxes (default: 3000)"
    )
    parser.add_argument("--gmail-quota", type=float, default=250, help="Gmail units per user per second (default 250)")
    parser.add_argument(
        "--hubspot-search", type=int, default=5, help="HubSpot searches per second per user (default: 5)"
    )
    parser.add_argument("--hubspot-size", type=int, default=25_000, help="HubSpot world size (default: 25000)")
    parser.add_argument("--seed", type=int, default=7, help="world seed (default: 7)")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis, flushed first (default: {REDIS_URL})")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help=f"PostgreSQL admin URL (default: {PG_ADMIN_URL})")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed for one sync (default: 900)")
    parser.add_argument("--json", action="store_true", help="also print each provider's figures as one JSON line")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="HubSpot backfill: also print when searches were served and each stream's pages stored, and the pace "
        "the stores set (seconds from the first search)",
    )
    return parser.parse_args(argv)


def _wrap(owner: Any, name: str, after: Callable[..., None]) -> None:
    """Call `after(result, *args)` after each call of owner.name (an instance attribute shadows the method)."""
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        after(result, *args, **kwargs)
        return result

    setattr(owner, name, wrapped)


def meter_gmail(sandbox: Any, meter: Meter) -> None:
    google = sandbox.google
    _wrap(google.stats, "op", lambda _r, kind, account, units=0: meter.serve(account, units))
    _wrap(google.quota, "take", lambda wait, account, *_a, **_k: meter.refuse(account) if wait > 0 else None)


def meter_hubspot(sandbox: Any, meter: Meter) -> None:
    hubspot = sandbox.hubspot
    _wrap(hubspot.stats, "op", lambda _r, kind, account, units=0: meter.serve(account, int(kind == "search")))
    _wrap(
        hubspot.limits, "check", lambda verdict, account, *_a, **_k: None if verdict.allowed else meter.refuse(account)
    )


def stored_pages(logs: Sequence[Path]) -> list[tuple[float, str]]:
    """(wall time, stream) of every "page stored" line the workers logged (JSON lines), in time order."""
    stored = []
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if '"page stored"' in line:
                entry = json.loads(line)
                stored.append((datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp(), entry["stream"]))
    return sorted(stored)


def print_timeline(meter: Meter, stored: Sequence[tuple[float, str]], wall_offset: float) -> None:
    """Searches served and pages stored, from the first search; the pace stores one after another allow.

    An org's pages store one at a time (ingest_page takes the org's lock); when they follow each other back to
    back, the gap between two stores bounds the searches' pace (roughly: a gap also holds the time no page was
    ready to store, and the small pages, owners and companies, store faster)."""
    searches = sorted(t + wall_offset for served in meter.served.values() for t, units in served if units)
    if not searches or not stored:
        return
    first = searches[0]
    print(f"  timeline, s from the first search: searches {' '.join(f'{t - first:.2f}' for t in searches)}")
    for stream in sorted({s for _, s in stored}):
        print(f"  stored {stream}: {' '.join(f'{t - first:.2f}' for t, s in stored if s == stream)}")
    gaps = sorted(b[0] - a[0] for a, b in pairwise(stored))
    if gaps:
        gap = gaps[len(gaps) // 2]
        pace = len(searches) / len(stored) / gap
        print(
            f"  stores: {len(stored)} pages, one every {gap:.2f} s (median gap) at {len(searches) / len(stored):.1f} "
            f"searches a page: stored back to back, they allow {pace:.1f} searches/s"
        )


def figures(provider: str, meter: Meter, ceiling: float, seconds: float, failed: int) -> Result:
    accounts: dict[str, dict[str, float]] = {}
    for account, served in sorted(meter.served.items()):
        first, last = served[0][0], served[-1][0]
        units = sum(u for _, u in served)
        span = last - first
        accounts[account] = {
            "units": units,
            "calls": len(served),
            "refused": meter.refused[account],
            "span_seconds": round(span, 2),
            "use": units / (ceiling * span) if span > 0 else float("nan"),
        }
    served_calls = sum(len(s) for s in meter.served.values())
    return Result(provider, ceiling, accounts, sum(meter.refused.values()), served_calls, seconds, failed)


def run(provider: str, args: argparse.Namespace) -> Result:
    """One provider's backfill through the whole product, with worker processes on Redis."""
    import redis

    from bench.gmail_backfill import calibrated_world, settings_env, start_worker, stop_worker, store_url
    from sandbox.world import generate_world
    from sync.logs import configure_logging
    from web.stack import running_stack

    now = datetime.now(UTC).replace(microsecond=0)  # the workers' clock is the system clock
    members: tuple[str, ...] = MEMBERS
    if provider == "gmail":
        world = calibrated_world(generate_world, args.messages, members, args.seed, now)[0]
    else:
        members = MEMBERS[:1]  # one account, its six streams sharing its ceiling
        world = generate_world(seed=args.seed, size=args.hubspot_size, now=now, org_domain=DOMAIN, members=MEMBERS)
    base = Path(tempfile.mkdtemp(prefix=f"sxsync-bench-quota-{provider}-"))
    configure_logging("INFO", base / "logs", stderr=False)
    redis.Redis.from_url(args.redis_url).flushdb()
    meter = Meter()
    wall_offset = time.time() - time.monotonic()  # the meter's clock to the workers' log times
    store = argparse.Namespace(store="postgresql", pg_url=args.pg_url)
    overrides: dict[str, Any] = {"broker_url": args.redis_url}
    if provider == "hubspot":  # searches send no rate-limit headers: the product is told the account's figure
        overrides["rate_limits"] = f"hubspot-search={args.hubspot_search}/1"
    try:
        with (
            store_url(store, base, "quota") as url,
            running_stack(
                data_dir=base / "stack",
                world=world,
                workers=0,
                database_url=url,
                **overrides,
            ) as stack,
        ):
            stack.seed_org(ORG, DOMAIN, MEMBERS, {"sources": [provider]})
            for email in members:
                stack.connect(ORG, email, "google" if provider == "gmail" else provider)
            if provider == "gmail":
                stack.sandbox.google.configure(
                    quota_units_per_second=args.gmail_quota, quota_burst_seconds=GMAIL_BURST_SECONDS
                )
                meter_gmail(stack.sandbox, meter)
                ceiling = float(args.gmail_quota)
            else:
                stack.sandbox.hubspot.configure(
                    burst_limit=HUBSPOT_BURST,
                    burst_interval_ms=HUBSPOT_WINDOW_MS,
                    search_per_second=args.hubspot_search,
                )
                meter_hubspot(stack.sandbox, meter)
                ceiling = float(args.hubspot_search)
            env = settings_env(stack.rt.settings)
            workers = [start_worker(env, args.threads, base / f"worker{i}.log") for i in range(args.processes)]
            try:
                started = time.monotonic()
                final = stack.sync(timeout=args.timeout)
                seconds = time.monotonic() - started
            finally:
                for worker in workers:
                    stop_worker(worker)
        if args.timeline and provider == "hubspot":
            print_timeline(meter, stored_pages(sorted(base.glob("worker*.log"))), wall_offset)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return figures(provider, meter, ceiling, seconds, final.failed)


def fetch_only(args: argparse.Namespace) -> Result:
    """HubSpot's six streams fetched page after page with nothing stored: what the shared budget alone lets
    through. One thread per stream (the pipeline's one chain per stream), the product's page size, the
    budget in Redis as the workers share it, the same emulator limits and meter as the backfill."""
    import redis

    from bench.streams import PAGE_SIZE, context_for
    from connectors import hubspot
    from connectors.base import JSON, RateLimited
    from sandbox.server import Sandbox
    from sandbox.world import generate_world
    from sync.ratelimit import AccountQuota, RedisBuckets, configured_limit

    now = datetime.now(UTC).replace(microsecond=0)
    world = generate_world(seed=args.seed, size=args.hubspot_size, now=now, org_domain=DOMAIN, members=MEMBERS)
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    buckets, spec, member, meter = RedisBuckets(client), f"hubspot-search={args.hubspot_search}/1", MEMBERS[0], Meter()
    base = Path(tempfile.mkdtemp(prefix="sxsync-bench-quota-fetch-"))
    failed: list[str] = []
    try:
        with Sandbox(world, tls=True, cert_dir=str(base / "ca")) as sb:
            ctx = replace(context_for(sb, "hubspot", member, world.now), page_size=PAGE_SIZE)
            sb.hubspot.configure(
                burst_limit=HUBSPOT_BURST, burst_interval_ms=HUBSPOT_WINDOW_MS, search_per_second=args.hubspot_search
            )
            meter_hubspot(sb, meter)

            def chain(stream: str) -> None:
                cursor: JSON | None = None
                try:
                    while True:
                        quota = AccountQuota(
                            buckets, f"hubspot:{member}", configured_limit(spec, "hubspot"),
                            {"search": configured_limit(spec, "hubspot-search")},
                        )  # fmt: skip
                        try:
                            page = hubspot.fetch_page(stream, cursor, replace(ctx, quota=quota))
                        except RateLimited as exc:
                            time.sleep(exc.retry_after)
                            continue
                        if page.done:
                            return
                        cursor = page.cursor
                except Exception as exc:  # reported as a failed stream
                    failed.append(f"{stream}: {exc}")

            threads = [threading.Thread(target=chain, args=(s,)) for s in hubspot.streams]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(args.timeout)
            seconds = time.monotonic() - started
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for failure in failed:
        print(f"# quota: fetch only: {failure}", file=sys.stderr)
    return figures(FETCH_ONLY, meter, float(args.hubspot_search), seconds, len(failed))


def report(results: Sequence[Result], args: argparse.Namespace) -> None:
    print(
        f"\nQuota use during a backfill — {args.processes} worker processes x {args.threads} threads on Redis + "
        f"PostgreSQL; targets: use ≥ {USE_TARGET:.0%} of the ceiling, throttled ≤ {THROTTLED_TARGET:.0%} of calls"
    )
    head = ("provider", "ceiling/s/user", "quota use", "throttled", "served calls", "refused", "sync s", "failed")
    rows = [
        (
            r.provider,
            f"{r.ceiling:g}",
            f"{r.use:.1%}",
            f"{r.throttled:.2%}",
            f"{r.served_calls:,}",
            f"{r.refused:,}",
            f"{r.seconds:.1f}",
            str(r.failed),
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    for r in results:
        for account, a in r.accounts.items():
            print(
                f"  {r.provider} {account}: {a['units']:,.0f} units in {a['calls']:,} calls over {a['span_seconds']} s"
                f" = {a['use']:.1%} of the ceiling; {a['refused']:,} refused"
            )


def measure(args: argparse.Namespace) -> list[Result]:
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    unknown = set(providers) - {"gmail", "hubspot", "hubspot-fetch"}
    if unknown:
        raise SystemExit(f"unknown providers: {sorted(unknown)} (gmail, hubspot, hubspot-fetch)")
    results = []
    for provider in providers:
        print(f"# quota: {provider} backfill …", file=sys.stderr, flush=True)
        results.append(fetch_only(args) if provider == "hubspot-fetch" else run(provider, args))
    return results


def rows(size: str) -> list[Any]:
    """The suite's rows (bench/table.py): one per provider for quota use, one for throttled calls."""
    from bench.table import Row

    args = parse_args([] if size == "quick" else ["--messages", "10000"])
    results = measure(args)
    report(results, args)
    out = []
    for r in results:
        if r.provider == FETCH_ONLY:  # context: what the budget alone lets through, against the backfill's row
            note = f"hubspot: {r.ceiling:g}/s, one thread per stream, nothing stored; {r.refused} of "
            out.append(
                Row("quota use, hubspot pages fetched with nothing stored (the budget alone)", f"{r.use:.1%}",
                    f"≥ {USE_TARGET:.0%}", None, note + f"{r.refused + r.served_calls} calls throttled")
            )  # fmt: skip
            continue
        note = f"{r.provider}: {r.ceiling:g}/s per user, {args.processes}x{args.threads} workers, {r.seconds:.0f} s"
        out.append(
            Row(f"quota use during a {r.provider} backfill", f"{r.use:.1%}", f"≥ {USE_TARGET:.0%}",
                r.use >= USE_TARGET and not r.failed, note)
        )  # fmt: skip
        out.append(
            Row(f"throttled responses, {r.provider} backfill", f"{r.throttled:.2%}", f"≤ {THROTTLED_TARGET:.0%}",
                r.throttled <= THROTTLED_TARGET, f"{r.refused} of {r.refused + r.served_calls} calls")
        )  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = measure(args)
    report(results, args)
    if args.json:
        for r in results:
            print(json.dumps(r.as_dict()))
    return 0 if all(not r.failed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
