"""Per-stream benchmark: HTTP calls per 10,000 records against the provider's minimum, and records/s end to end.

One world (`sandbox.world.generate_world(size=…)`, whose size drives every emulator) serves two parts:

1. **Connector level** (no store): for every (connector, stream) of the registry, the real connector
   against the sandbox's emulators, signed in through each provider's real OAuth flow (authorize URL
   with PKCE, the emulator's redirect, the code exchange by the product's OAuth client) as the
   connected accounts. A full pass from no cursor counts records (ActivityObservation +
   PersonObservation + Deletion of every page), HTTP calls (the pages' `api_calls`, cross-checked against
   the emulator's own request counters without OAuth) and the minimum calls the provider's documented
   page and batch limits allow for that many records (one small function per stream family below).
   Then an immediate incremental pass from the final cursor: its calls (target: 1 per stream cursor)
   and records (should be 0).
2. **End to end**: the whole product (`web.stack.running_stack`, SQLite, in-process broker and worker
   threads), every provider connected through the real consent flow over HTTP, then one `stack.sync()`
   per source with only that source's connections active (the others paused), timed; records/s is the
   pipeline's stored records (`sync_states.records_total`) of that source over the wall time.

Ratios are the figures to read: the machine is shared and noisy, so bare timings move run to run.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


from connectors.base import JSON, Connector, Endpoints, FetchContext, RateLimited  # noqa: E402
from connectors.registry import CONNECTORS  # noqa: E402
from models.settings import Settings  # noqa: E402
from sandbox.server import Sandbox  # noqa: E402
from sandbox.world import World, generate_world  # noqa: E402
from tests.consent import sign_in  # noqa: E402

ORG = "acme"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
# the emulators' counter labels that are not API calls: OAuth and identity endpoints, and batch parts
# (counted beside their batch request, which is the one HTTP call)
NOT_API = frozenset(
    {"authorize", "token", "revoke", "discovery", "keys", "token_info", "refresh_token", "userinfo", "identity"}
)
NOT_HTTP = frozenset({"batch_parts"})
TARGET = 1.05  # the bar: calls within 1.05 x the minimum
MAX_PAGES = 100_000
MAX_WAITS = 100  # Retry-After waits allowed in one pass (the emulators throttle nothing by default)
SETTINGS_DEFAULTS = Settings.model_fields
PAGE_SIZE = int(SETTINGS_DEFAULTS["page_size"].default)  # what the product hands a connector
BACKFILL_DAYS = int(SETTINGS_DEFAULTS["backfill_days"].default)


# --------------------------------------------------------------------------------------------------
# the minimum calls each provider's documented limits allow, per stream family
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What the minimum of one account's full pass may depend on: its records, final cursor, the sandbox."""

    records: int
    external_ids: tuple[str, ...]
    cursor: JSON
    sandbox: Sandbox
    account: str


def pages(n: int, limit: int) -> int:
    """List calls for n items at `limit` a page: an empty list still takes one call."""
    return max(1, math.ceil(n / limit))


def gmail_minimum(s: Seen) -> int:
    # users.getProfile (the history id a full pass starts from) + users.messages.list at maxResults 500
    # (its ceiling) + messages.get in batch requests of 100 (Gmail's documented batch ceiling)
    return 1 + pages(s.records, 500) + math.ceil(s.records / 100)


def google_calendar_minimum(s: Seen) -> int:
    # calendarList.list at maxResults 250 (its ceiling), then per calendar events.list at maxResults 2500
    # (its ceiling): one call per calendar even when it is empty (its nextSyncToken comes on the last page)
    calendars = [str(c) for c in s.cursor.get("calendars") or ()] or ["primary"]
    per_calendar = Counter(i.split("/", 1)[0] for i in s.external_ids)
    return pages(len(calendars), 250) + sum(pages(per_calendar.get(c, 0), 2500) for c in calendars)


def people_minimum(s: Seen) -> int:
    # people.connections.list / otherContacts.list at pageSize 1000 (the People API's ceiling)
    return pages(s.records, 1000)


def graph_delta_minimum(s: Seen) -> int:
    # the initial delta round at Prefer: odata.maxpagesize=1000 (what the connector asks; the emulator's
    # cap, max_page_size): the last page carries the deltaLink, so n items take ceil(n/1000) calls
    return pages(s.records, 1000)


def graph_calendar_minimum(s: Seen) -> int:
    # calendarView delta at odata.maxpagesize=1000, plus the series masters (GET /me/events/{id} for their
    # iCalUId) in JSON $batch requests of 20 (Graph's $batch ceiling). Masters: those the account's
    # events name (from the emulator; a master whose occurrences all fall outside the window is counted too)
    masters: set[str] = set()
    try:
        for event in s.sandbox.microsoft.live(s.account, "events"):
            master = event.get("seriesMasterId")
            if isinstance(master, str) and master:
                masters.add(master)
    except Exception:  # the emulator's internals moved: the delta pages alone
        masters = set()
    return pages(s.records, 1000) + math.ceil(len(masters) / 20)


def salesforce_minimum(s: Seen) -> int:
    # one SOQL queryAll, then queryMore, at Sforce-Query-Options batchSize=2000 (the REST API's maximum)
    return pages(s.records, 2000)


def watch_start_minimum(s: Seen) -> int:
    # Salesforce accounts, HubSpot companies: no records of their own on a full pass (their changes re-send
    # contacts later); one query for the newest record finds where to start watching
    return 1


def hubspot_owners_minimum(s: Seen) -> int:
    # GET /crm/v3/owners at limit 500 (its ceiling); no archived list: a full pass sweeps what it did not see
    return pages(s.records, 500)


def hubspot_search_minimum(s: Seen) -> int:
    # POST /crm/v3/objects/{type}/search at limit 200 (the search API's ceiling)
    return pages(s.records, 200)


def hubspot_contacts_minimum(s: Seen) -> int:
    # searches at 200, plus the names of the companies that contacts without `company` text of their own
    # are named after (their primary company, associatedcompanyid; search returns no associated record's
    # property): the cheaper of batch reads of 100 of those distinct companies, or every live company by
    # search at 200
    emitted = {int(i) for i in s.external_ids if i.isdigit()}
    with s.sandbox.hubspot.lock:
        contacts = s.sandbox.hubspot.portal.records["contacts"]
        companies = {i for i, r in s.sandbox.hubspot.portal.records["companies"].items() if not r.archived}
        named = {
            int(cid)
            for i in emitted
            if (c := contacts.get(i)) is not None
            and not str(c.properties.get("company") or "").strip()
            and (cid := str(c.properties.get("associatedcompanyid") or "")).isdigit()
            and int(cid) in companies
        }
    names = min(math.ceil(len(named) / 100), math.ceil(len(companies) / 200))
    return pages(s.records, 200) + names


def hubspot_engagement_minimum(s: Seen) -> int:
    # the cheaper of the two ways to get engagements with their contacts: search at 200 a call + v4
    # association batch reads of 1,000 ids (60 per 10,000), or the list API at limit 100 with
    # associations inline (100 per 10,000)
    return min(pages(s.records, 200) + math.ceil(s.records / 1000), pages(s.records, 100))


MinimumFn = Callable[[Seen], int]
# "source/stream" first, then "source"; a stream with neither shows no minimum
MINIMUMS: dict[str, MinimumFn] = {
    "gmail": gmail_minimum,
    "google_calendar": google_calendar_minimum,
    "google_contacts": people_minimum,
    "outlook_mail": graph_delta_minimum,
    "outlook_contacts": graph_delta_minimum,
    "outlook_calendar": graph_calendar_minimum,
    "salesforce": salesforce_minimum,
    "salesforce/accounts": watch_start_minimum,
    "hubspot": hubspot_search_minimum,
    "hubspot/owners": hubspot_owners_minimum,
    "hubspot/contacts": hubspot_contacts_minimum,
    "hubspot/companies": watch_start_minimum,
    "hubspot/calls": hubspot_engagement_minimum,
    "hubspot/meetings": hubspot_engagement_minimum,
    "hubspot/emails": hubspot_engagement_minimum,
}


def minimum_of(source: str, stream: str) -> MinimumFn | None:
    return MINIMUMS.get(f"{source}/{stream}") or MINIMUMS.get(source)


def provider_cursors(source: str, cursor: JSON) -> int:
    """The provider cursors a stream's final cursor holds: the calls an unchanged incremental run needs.

    Google Calendar keeps one sync token per calendar (events.list takes one calendarId; the API has no
    change feed across calendars); every other stream follows one provider cursor."""
    if source == "google_calendar":
        return max(1, len(cursor.get("sync_tokens") or ()))
    return 1


# --------------------------------------------------------------------------------------------------
# connector level
# --------------------------------------------------------------------------------------------------


@dataclass
class Pass:
    """One pass of one stream for one account."""

    pages: int = 0
    records: int = 0
    rejections: int = 0
    calls: int = 0  # the pages' api_calls
    emulator_calls: int = 0  # the emulator's counters over the pass (OAuth excluded)
    kinds: Counter[str] = field(default_factory=Counter)  # the same by endpoint kind
    waits: int = 0  # RateLimited answers waited out
    seconds: float = 0.0
    cursor: JSON = field(default_factory=dict)
    external_ids: list[str] = field(default_factory=list)


@dataclass
class StreamResult:
    """One (source, stream) over every connected account."""

    source: str
    stream: str
    records: int = 0
    rejections: int = 0
    calls: int = 0
    emulator_calls: int = 0
    kinds: dict[str, int] = field(default_factory=dict)  # the emulator's calls by endpoint kind (full passes)
    pages: int = 0
    minimum: int | None = 0
    waits: int = 0
    fetch_seconds: float = 0.0
    cursors: int = 0  # provider cursors over the accounts (provider_cursors of each full pass's final cursor)
    incremental_calls: int = 0
    incremental_emulator_calls: int = 0
    incremental_records: int = 0
    incremental_pages: int = 0
    error: str | None = None
    e2e_records_per_second: float | None = None

    @property
    def name(self) -> str:
        return f"{self.source}/{self.stream}"


def context_for(sb: Sandbox, provider: str, account: str, now: datetime) -> FetchContext:
    """Sign in as `account` (the product's OAuth client, PKCE S256, the emulator's consent redirect), and
    the FetchContext the sync layer would build from the tokens (sync.pipeline._context)."""
    tokens = sign_in(sb, provider, account, "bench")
    extra = {k: str(v) for k, v in tokens.extra.items() if k in ("instance_url", "id")}
    endpoints = Endpoints(
        api_url=extra.get("instance_url") or sb.settings()[f"{provider.upper()}_API_URL"],
        ca_bundle=sb.ca_path,
        timeout=float(SETTINGS_DEFAULTS["http_timeout"].default),
    )
    return FetchContext(
        access_token=tokens.access_token,
        endpoints=endpoints,
        account=account,
        now=now,
        backfill_days=BACKFILL_DAYS,
        page_size=PAGE_SIZE,
        extra=extra,
    )


def api_calls_counted(sb: Sandbox, provider: str) -> Counter[str]:
    """HTTP requests the provider's emulator has counted, by endpoint kind, OAuth and identity endpoints excluded."""
    calls: Mapping[str, int] = getattr(sb, provider).stats.snapshot()["calls"]
    return Counter({k: n for k, n in calls.items() if k.split(":", 1)[0] not in NOT_API and k not in NOT_HTTP})


def drive(connector: Connector, stream: str, cursor: JSON | None, ctx: FetchContext, sb: Sandbox) -> Pass:
    """Pages from `cursor` until `done`, as the sync layer chains them (Retry-After honoured)."""
    out = Pass()
    before = api_calls_counted(sb, connector.provider)
    started = time.perf_counter()
    while out.pages < MAX_PAGES:
        try:
            page = connector.fetch_page(stream, cursor, ctx)
        except RateLimited as exc:
            out.waits += 1
            if out.waits > MAX_WAITS:
                raise
            time.sleep(min(max(exc.retry_after, 0.1), 10.0))
            continue
        out.pages += 1
        out.records += len(page.observations)
        out.rejections += len(page.rejections)
        out.calls += page.api_calls
        out.external_ids.extend(o.external_id for o in page.observations)
        if page.done:
            out.cursor = page.cursor
            break
        if page.cursor == cursor and not page.observations and not page.retry_after:
            raise RuntimeError(f"{connector.name}/{stream}: a page handed back its own cursor (a loop)")
        cursor = page.cursor
        if page.retry_after:
            time.sleep(min(page.retry_after, 10.0))
    else:
        raise RuntimeError(f"{connector.name}/{stream}: no end after {MAX_PAGES} pages")
    out.seconds = time.perf_counter() - started
    out.kinds = api_calls_counted(sb, connector.provider) - before
    out.emulator_calls = out.kinds.total()
    return out


def selected_sources(args: argparse.Namespace) -> list[str]:
    wanted = [s.strip() for s in (args.sources or "").split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(CONNECTORS))
    if unknown:
        raise SystemExit(f"unknown sources {unknown}; registered: {sorted(CONNECTORS)}")
    return [s for s in CONNECTORS if not wanted or s in wanted]


def connector_level(args: argparse.Namespace, world: World, sources: Sequence[str], base: Path) -> list[StreamResult]:
    """Every selected (source, stream) of the registry: full pass then incremental pass, per account."""
    accounts = MEMBERS[: args.members]
    results: list[StreamResult] = []
    # HTTPS as the product runs it (msal refuses a plain-http authority)
    with Sandbox(world, tls=True, cert_dir=str(base / "sandbox-ca")) as sb:
        providers = list(dict.fromkeys(CONNECTORS[s].provider for s in sources))
        contexts = {(p, a): context_for(sb, p, a, world.now) for p in providers for a in accounts}
        for source in sources:
            connector = CONNECTORS[source]
            for stream in connector.streams:
                result = StreamResult(source, stream)
                results.append(result)
                minimum = minimum_of(source, stream)
                if minimum is None:
                    result.minimum = None
                say(f"connector level: {result.name} …")
                for account in accounts:
                    ctx = contexts[(connector.provider, account)]
                    try:
                        full = drive(connector, stream, None, ctx, sb)
                        incremental = drive(connector, stream, full.cursor, ctx, sb)
                    except Exception as exc:  # report it in the table, go on with the other streams
                        result.error = f"{type(exc).__name__}: {str(exc)[:160]}"
                        break
                    result.records += full.records
                    result.rejections += full.rejections
                    result.calls += full.calls
                    result.emulator_calls += full.emulator_calls
                    result.kinds = dict(Counter(result.kinds) + full.kinds)
                    result.pages += full.pages
                    result.waits += full.waits + incremental.waits
                    result.fetch_seconds += full.seconds
                    result.cursors += provider_cursors(source, full.cursor)
                    result.incremental_calls += incremental.calls
                    result.incremental_emulator_calls += incremental.emulator_calls
                    result.incremental_records += incremental.records
                    result.incremental_pages += incremental.pages
                    if minimum is not None and result.minimum is not None:
                        seen = Seen(full.records, tuple(full.external_ids), full.cursor, sb, account)
                        result.minimum += minimum(seen)
    return results


# --------------------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------------------


@dataclass
class SourceE2E:
    source: str
    seconds: float
    records: int
    api_calls: int
    pages: int
    failed: int

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("nan")


def end_to_end(args: argparse.Namespace, world: World, sources: Sequence[str], base: Path) -> list[SourceE2E]:
    """The product on SQLite, each source synced alone (the other sources' connections paused), timed."""
    from sync.logs import configure_logging
    from web.stack import running_stack

    configure_logging("INFO", base / "logs", stderr=False)
    out: list[SourceE2E] = []
    with running_stack(data_dir=base / "stack", world=world, workers=args.threads) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS, policy={"sources": list(sources)})
        providers = list(dict.fromkeys(CONNECTORS[s].provider for s in sources))
        for email in MEMBERS[: args.members]:
            for provider in providers:
                stack.connect(ORG, email, provider)
        for source in sources:
            say(f"end to end: {source} …")
            only(stack, source)
            before = source_totals(stack, source)
            started = time.perf_counter()
            final = stack.sync(timeout=args.timeout)
            seconds = time.perf_counter() - started
            after = source_totals(stack, source)
            records, calls, page_count = (a - b for a, b in zip(after, before, strict=True))
            out.append(SourceE2E(source, seconds, records, calls, page_count, final.failed))
    return out


def only(stack: Any, source: str) -> None:
    """`source`'s connections active, every other one paused (as an operator would pause them)."""
    from sqlalchemy import update

    from models.tables import Connection

    with stack.rt.writes.begin() as session:
        session.execute(update(Connection).where(Connection.source == source).values(status="active"))
        session.execute(update(Connection).where(Connection.source != source).values(status="paused"))


def source_totals(stack: Any, source: str) -> tuple[int, int, int]:
    """(records stored, API calls, pages) of `source`'s sync states so far."""
    from sqlalchemy import func, select

    from models.tables import Connection, SyncState

    with stack.rt.sessions() as session:
        row = session.execute(
            select(
                func.coalesce(func.sum(SyncState.records_total), 0),
                func.coalesce(func.sum(SyncState.api_calls_total), 0),
                func.coalesce(func.sum(SyncState.pages_total), 0),
            )
            .join(Connection, Connection.id == SyncState.connection_id)
            .where(Connection.source == source)
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


# --------------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------------

HEAD = ("stream", "records", "calls", "calls/10k", "min/10k", "x min", "incremental calls/cursors", "e2e rec/s")


def per_10k(calls: int, records: int) -> str:
    return f"{10_000 * calls / records:,.1f}" if records else "—"


def table_rows(results: Sequence[StreamResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in results:
        if r.error is not None:
            rows.append((r.name, "error", "", "", "", "", "", ""))
            continue
        ratio = f"{r.calls / r.minimum:.2f}" if r.minimum else "—"
        incremental = f"{r.incremental_calls}/{r.cursors}"
        if r.incremental_records:
            incremental += f" ({r.incremental_records} rec)"
        e2e = f"{r.e2e_records_per_second:,.0f}" if r.e2e_records_per_second is not None else "—"
        rows.append(
            (
                r.name,
                f"{r.records:,}",
                f"{r.calls:,}",
                per_10k(r.calls, r.records),
                per_10k(r.minimum, r.records) if r.minimum is not None else "—",
                ratio,
                incremental,
                e2e,
            )
        )
    return rows


def print_table(results: Sequence[StreamResult], e2e: Sequence[SourceE2E], args: argparse.Namespace) -> None:
    rows = table_rows(results)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(HEAD)]
    print()
    print(
        f"Streams — world size {args.size:,}, seed {args.seed}, {args.members} account(s) per provider, "
        f"page size {PAGE_SIZE}, backfill {BACKFILL_DAYS} days"
        + ("" if args.no_e2e else f"; e2e: SQLite, in-process broker, {args.threads} worker threads")
    )
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(HEAD, widths, strict=True))))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    print()
    for line in notes(results, e2e):
        print("  " + line)


def notes(results: Sequence[StreamResult], e2e: Sequence[SourceE2E]) -> Iterator[str]:
    """What the table cannot say: errors, counter mismatches, throttling, rejections, e2e detail."""
    for r in results:
        if r.error is not None:
            yield f"{r.name}: {r.error}"
            continue
        if r.calls != r.emulator_calls or r.incremental_calls != r.incremental_emulator_calls:
            yield (
                f"{r.name}: the pages counted {r.calls} + {r.incremental_calls} calls, the emulator "
                f"{r.emulator_calls} + {r.incremental_emulator_calls}"
            )
        if r.waits:
            yield f"{r.name}: {r.waits} RateLimited answers waited out (their calls are in the emulator's count only)"
        if r.minimum and r.calls > TARGET * r.minimum:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(r.kinds.items()))
            yield f"{r.name}: {r.calls / r.minimum:.2f} x the minimum ({r.calls} calls vs {r.minimum}): {kinds}"
    checked = [r for r in results if r.error is None]
    if checked and all(
        r.calls == r.emulator_calls and r.incremental_calls == r.incremental_emulator_calls for r in checked
    ):
        yield "calls: the pages' api_calls equal the emulators' own request counters (OAuth excluded) on every stream"
    rejected = [f"{r.name} {r.rejections}" for r in checked if r.rejections]
    if rejected:
        yield "rejections (records read but not emitted; their calls count, the records do not): " + ", ".join(rejected)
    for s in e2e:
        yield (
            f"e2e {s.source}: {s.records:,} records stored in {s.seconds:.1f} s "
            f"({s.records_per_second:,.0f}/s), {s.api_calls:,} API calls, {s.pages:,} pages"
            + (f", {s.failed} streams FAILED" if s.failed else "")
        )


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


def say(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.streams",
        description=(
            "Per stream of every registered connector: HTTP calls per 10,000 records against the minimum the "
            "provider's page and batch limits allow, calls of an immediate incremental pass, and records/s "
            "end to end through the whole product (per source, SQLite)."
        ),
    )
    parser.add_argument(
        "--size",
        type=int,
        default=25000,
        help="the world's size (sandbox.world.generate_world; default: 25000, about 3 minutes in all)",
    )
    parser.add_argument("--seed", type=int, default=7, help="world seed (default: 7)")
    parser.add_argument(
        "--members",
        type=int,
        choices=(1, 2, 3),
        default=1,
        help="accounts connected per provider (default: 1, alice; CRM streams are org-wide, so each reads it all)",
    )
    parser.add_argument("--sources", default="", help="comma-separated sources (default: every registered one)")
    parser.add_argument(
        "--no-e2e", action="store_true", help="connector level only (no store; about 30 s at the default size)"
    )
    parser.add_argument("--threads", type=int, default=4, help="e2e worker threads (default: 4, as the stack)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one e2e sync (default: 1800)")
    parser.add_argument("--json", action="store_true", help="also print every stream's and source's figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the e2e data dir (logs, SQLite file)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sources = selected_sources(args)
    started = time.monotonic()
    now = datetime.now(UTC).replace(microsecond=0)  # the product's clock is the system clock

    def world() -> World:
        return generate_world(seed=args.seed, size=args.size, now=now, org_domain=DOMAIN, members=MEMBERS)

    base = Path(tempfile.mkdtemp(prefix="sxsync-bench-streams-"))
    try:
        results = connector_level(args, world(), sources, base)
        e2e: list[SourceE2E] = [] if args.no_e2e else end_to_end(args, world(), sources, base)
    except BaseException:
        print(f"# failed: logs and data kept in {base}", file=sys.stderr)
        raise
    if args.keep:
        print(f"# kept {base}", file=sys.stderr)
    else:
        shutil.rmtree(base, ignore_errors=True)
    by_source = {s.source: s for s in e2e}
    for r in results:
        if r.source in by_source:
            r.e2e_records_per_second = by_source[r.source].records_per_second
    print_table(results, e2e, args)
    wall = time.monotonic() - started
    print(f"  wall time {wall:.0f} s")
    if args.json:
        run = {"size": args.size, "seed": args.seed, "members": args.members, "threads": args.threads}
        print(json.dumps({"kind": "run", **run, "page_size": PAGE_SIZE, "wall_seconds": wall}))
        for r in results:
            figures = asdict(r) | {"minimum": r.minimum}
            print(json.dumps({"kind": "stream", **figures}))
        for s in e2e:
            print(json.dumps({"kind": "e2e", **asdict(s), "records_per_second": s.records_per_second}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
