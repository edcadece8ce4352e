"""Outlook calendar under $batch throttling, against the Microsoft emulator over HTTPS (tokens from real msal).

Series masters are looked up 20 per $batch; Graph may answer any part 429 with its own Retry-After. A page
whose lookups are partly throttled comes back empty with `retry_after` and the masters already resolved in
its cursor; the retry re-reads the page and asks only for the rest (connectors/outlook_calendar.py).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors import outlook_calendar
from connectors.base import CursorExpired, FetchContext, Page, RateLimited
from connectors.graph_http import BATCH_LIMIT
from sandbox.graph_mailgen import graph_id
from sandbox.microsoft_shared_meetings import graph_person, graph_when
from sandbox.server import Sandbox
from sandbox.tls import generate_certs
from sandbox.world import World, generate_world
from tests.connectors.contract_support import (
    Case,
    context_for,
    multiset,
    observations,
    round_trip,
    run_pass,
    run_pass_through_storm,
    storm_plan,
)

pytestmark = pytest.mark.filterwarnings("ignore:Change your:DeprecationWarning")  # msal, on the Microsoft flow

CASE = Case("outlook_calendar", "events")
USER = "carol@acme.test"
SERIES = 45  # with the world's own, more masters than two batches hold
THROTTLED = 3


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=11, size=150)


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("outlook-throttle-ca")
    generate_certs(str(path))
    return path


@pytest.fixture
def sandbox(world: World, cert_dir: Path) -> Iterator[Sandbox]:
    with Sandbox(world, tls=True, cert_dir=str(cert_dir)) as sb:
        yield sb


def add_series(sb: Sandbox, count: int, tag: str = "throttle") -> None:
    """`count` weekly series of three occurrences in the window: `count` more masters for a pass to look up."""
    for n in range(count):
        uid = f"040000008200E00074C5B7101A82E008{zlib.crc32(f'{tag}{n}'.encode()):056X}"
        master_id = graph_id(USER, tag, str(n), "master")
        first = (sb.world.now - timedelta(days=10 + n)).replace(hour=9, minute=0, second=0, microsecond=0)
        common = {
            "subject": f"Weekly {tag} {n}",
            "isAllDay": False,
            "isCancelled": False,
            "organizer": graph_person(USER, "Carol"),
            "attendees": [{"type": "required", **graph_person(f"guest{n}@globex.test", f"Guest {n}")}],
        }
        sb.microsoft.put_event(
            USER,
            {"id": master_id, "iCalUId": uid, "type": "seriesMaster", "seriesMasterId": None, **common},
            master=True,
        )
        for week in range(3):
            start = first + timedelta(weeks=week)
            stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
            occurrence = {
                "id": graph_id(USER, tag, str(n), stamp),
                "iCalUId": f"{uid}-{week}",
                "type": "occurrence",
                "seriesMasterId": master_id,
                "originalStart": stamp,
                "start": graph_when(start),
                "end": graph_when(start + timedelta(minutes=30)),
                **common,
            }
            sb.microsoft.put_event(USER, occurrence)


def calls(sb: Sandbox) -> dict[str, int]:
    return dict(sb.microsoft.stats.snapshot()["calls"])


def throttle_parts(sb: Sandbox, n: int, retry_after: int = 1) -> None:
    """The next `n` master lookups inside $batch calls answer 429 with this Retry-After."""
    sb.microsoft.faults.fail_next(n, "429", retry_after=retry_after, scope="part", endpoints=["event_get"])


def fetch(cursor: dict | None, ctx: FetchContext) -> Page:
    """One page, its cursor checked against the store's JSON round trip."""
    page = outlook_calendar.fetch_page("events", cursor, ctx)
    assert round_trip(page.cursor) == page.cursor
    return page


def test_a_partly_throttled_page_keeps_its_masters_and_asks_only_for_the_rest(sandbox: Sandbox) -> None:
    ctx = context_for(sandbox, "microsoft", USER)
    add_series(sandbox, SERIES)
    sandbox.microsoft.stats.reset()
    baseline = run_pass(CASE, ctx)
    masters = calls(sandbox)["batch_parts"]
    assert len(baseline) == 1 and masters > 2 * BATCH_LIMIT  # one delta page, three batches of lookups
    sandbox.microsoft.stats.reset()

    throttle_parts(sandbox, THROTTLED)
    first = fetch(None, ctx)
    assert first.retry_after == 1 and not first.done and first.full_resync
    assert first.observations == [] and first.rejections == []  # the retry emits the page whole, once
    assert len(first.cursor["masters"]) == BATCH_LIMIT - THROTTLED and first.api_calls == 2  # no second batch
    time.sleep(first.retry_after)
    second = fetch(round_trip(first.cursor), ctx)

    assert second.done and second.retry_after == 0 and len(second.cursor["masters"]) == masters  # the cache
    assert multiset(observations([second])) == multiset(observations(baseline))
    assert multiset(second.rejections) == multiset(baseline[0].rejections)
    counted = calls(sandbox)
    assert counted["batch_parts"] == masters + THROTTLED  # only the throttled ones were asked twice
    assert sandbox.microsoft.stats.snapshot()["ops"]["event_get"] == masters
    # raise-and-refetch would redo every lookup: 2 calls, then 1 delta GET + all the batches again
    kept = first.api_calls + second.api_calls
    assert kept == counted["calendar_delta"] + counted["batch"] == 3 + math.ceil((masters - 17) / BATCH_LIMIT)
    assert kept < 3 + math.ceil(masters / BATCH_LIMIT)
    assert sandbox.microsoft.faults.snapshot()["early_retries"] == 0


def test_a_storm_on_batch_parts_completes_with_the_same_observations(sandbox: Sandbox) -> None:
    ctx = context_for(sandbox, "microsoft", USER)
    add_series(sandbox, SERIES)
    sandbox.microsoft.configure(max_page_size=150)  # two delta pages, each with its own masters
    sandbox.microsoft.stats.reset()
    baseline = run_pass(CASE, ctx)
    answered = sandbox.microsoft.stats.snapshot()["ops"]["event_get"]
    assert len(baseline) == 2
    sandbox.microsoft.stats.reset()

    sandbox.microsoft.faults.configure(storm_plan(zlib.crc32(b"outlook-throttle"), 0.3))
    stormy = run_pass_through_storm(CASE, ctx, max_waits=30)
    sandbox.microsoft.faults.clear()

    assert multiset(observations(stormy.pages)) == multiset(observations(baseline))
    assert any(p.retry_after for p in stormy.pages)  # some pages were partly throttled and kept their progress
    assert all(round_trip(p.cursor) == p.cursor for p in stormy.pages)
    snapshot = sandbox.microsoft.stats.snapshot()
    assert snapshot["ops"]["event_get"] == answered  # no master Graph answered was asked for again
    assert sandbox.microsoft.faults.snapshot()["early_retries"] == 0


def test_a_retry_keeps_its_window_and_a_due_renewal_still_moves_it(sandbox: Sandbox) -> None:
    ctx = context_for(sandbox, "microsoft", USER)
    add_series(sandbox, SERIES)
    throttle_parts(sandbox, THROTTLED)
    first = fetch(None, ctx)
    window = parse_qs(urlsplit(first.cursor["link"]).query)
    assert first.cursor["phase"] == "full"
    assert window["startDateTime"] == [(ctx.now - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")]
    later = replace(ctx, now=ctx.now + timedelta(days=2))
    time.sleep(first.retry_after)
    second = fetch(first.cursor, later)  # the same page of the same round, whatever the clock says
    assert second.done and second.cursor["renew_after"] == first.cursor["renew_after"]

    cached = second.cursor["masters"]
    add_series(sandbox, 2, tag="fresh")  # an incremental page with two masters to look up
    throttle_parts(sandbox, 1)
    changed = fetch(second.cursor, ctx)
    assert changed.retry_after and changed.cursor["link"] == second.cursor["link"]
    assert changed.cursor["phase"] == "incremental" and len(changed.cursor["masters"]) == len(cached) + 1
    due = replace(ctx, now=ctx.now + timedelta(days=outlook_calendar.RENEW_DAYS + 1))
    time.sleep(changed.retry_after)
    sandbox.microsoft.stats.reset()
    renewed = fetch(changed.cursor, due)
    assert renewed.full_resync and renewed.cursor["renew_after"] > changed.cursor["renew_after"]
    # the new round keeps the cache: only the master the throttle left unresolved is asked for
    assert calls(sandbox)["batch_parts"] == 1 and renewed.api_calls == 2
    assert len(renewed.cursor["masters"]) == len(cached) + 2 and renewed.done


def test_a_throttle_that_resolves_nothing_raises_and_a_foreign_map_expires(sandbox: Sandbox) -> None:
    ctx = context_for(sandbox, "microsoft", USER)
    throttle_parts(sandbox, BATCH_LIMIT, retry_after=2)
    with pytest.raises(RateLimited) as caught:
        fetch(None, ctx)
    assert caught.value.retry_after == 2
    link = sandbox.microsoft_settings()["MICROSOFT_API_URL"] + "/me/calendarView/delta"
    with pytest.raises(CursorExpired, match="masters"):
        fetch({"phase": "full", "link": link, "masters": ["not", "a", "map"]}, ctx)


def test_the_emulator_counts_a_request_sooner_than_a_parts_retry_after(sandbox: Sandbox) -> None:
    ctx = context_for(sandbox, "microsoft", USER)
    add_series(sandbox, 2)
    throttle_parts(sandbox, 1, retry_after=30)
    page = fetch(None, ctx)
    assert page.retry_after == 30
    assert sandbox.microsoft.faults.snapshot()["early_retries"] == 0
    hasty = fetch(page.cursor, ctx)  # not waiting: Graph would throttle it, the emulator counts it
    assert sandbox.microsoft.faults.snapshot()["early_retries"] == hasty.api_calls == 2


def named_masters(sb: Sandbox, page: Page) -> set[str]:
    """The series masters a page's events name (from the emulator's own events)."""
    master_of = {e["id"]: e.get("seriesMasterId") for e in sb.microsoft.live(USER, "events")}
    return {m for o in page.observations if isinstance(m := master_of.get(o.external_id), str)}


def test_a_two_page_round_asks_for_each_master_once(sandbox: Sandbox) -> None:
    ctx = context_for(sandbox, "microsoft", USER)
    add_series(sandbox, SERIES)
    sandbox.microsoft.configure(max_page_size=150)  # two delta pages naming many of the same masters
    sandbox.microsoft.stats.reset()
    pages: list[Page] = []
    cursor: dict | None = None
    while not pages or not pages[-1].done:
        pages.append(fetch(cursor, ctx))
        cursor = round_trip(pages[-1].cursor)
    named = [named_masters(sandbox, p) for p in pages]
    assert len(pages) == 2 and named[0] & named[1], "the pages share masters"
    counted = calls(sandbox)
    distinct = named[0] | named[1]
    assert counted["batch_parts"] == len(distinct) == sandbox.microsoft.stats.snapshot()["ops"]["event_get"]
    assert counted["batch"] == math.ceil(len(named[0]) / BATCH_LIMIT) + math.ceil(
        len(named[1] - named[0]) / BATCH_LIMIT
    )
    assert set(pages[1].cursor["masters"]) == distinct
    assert list(round_trip(pages[1].cursor)["masters"]) == list(pages[1].cursor["masters"])  # the LRU order
    # the cache outlives the round: a change to a known series costs its delta GET alone
    sandbox.microsoft.stats.reset()
    occurrence = next(e for e in sandbox.microsoft.live(USER, "events") if e.get("seriesMasterId") in distinct)
    sandbox.microsoft.cancel_event(USER, occurrence["id"])
    later = fetch(cursor, ctx)
    assert later.done and later.api_calls == 1 and "batch" not in calls(sandbox)
    assert later.cursor["masters"] == pages[1].cursor["masters"]


def test_the_masters_cache_keeps_its_bound_dropping_the_least_recently_used(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = context_for(sandbox, "microsoft", USER)
    add_series(sandbox, SERIES)
    bound = 12
    monkeypatch.setattr(outlook_calendar, "MAX_MASTERS", bound)
    sandbox.microsoft.configure(max_page_size=10)  # pages naming fewer masters than the bound, more in all
    pages: list[Page] = []
    cursor: dict | None = None
    while not pages or not pages[-1].done:
        pages.append(fetch(cursor, ctx))
        cursor = round_trip(pages[-1].cursor)
    named = [named_masters(sandbox, p) for p in pages]
    assert max(len(n) for n in named) <= bound < len(set().union(*named))
    last_named: dict[str, int] = {m: i for i, n in enumerate(named) for m in n}
    for page, names in zip(pages, named, strict=True):
        assert len(page.cursor["masters"]) <= bound and names <= set(page.cursor["masters"])
    kept = set(pages[-1].cursor["masters"])
    dropped = set(last_named) - kept
    assert len(kept) == bound and dropped
    assert min(last_named[m] for m in kept) >= max(last_named[m] for m in dropped)  # least recently used out

    # an evicted master is asked for again, a kept one is not
    sandbox.microsoft.stats.reset()
    events = sandbox.microsoft.live(USER, "events")
    gone = next(e for e in events if e.get("seriesMasterId") in dropped and not e["isCancelled"])
    sandbox.microsoft.cancel_event(USER, gone["id"])
    again = fetch(cursor, ctx)
    assert calls(sandbox)["batch_parts"] == 1 and again.api_calls == 2
    assert list(again.cursor["masters"])[-1] == gone["seriesMasterId"] and len(again.cursor["masters"]) == bound
