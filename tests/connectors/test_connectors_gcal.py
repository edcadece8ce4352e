"""The Google Calendar connector over real HTTP (google-api-python-client) against the Calendar emulator."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from connectors import google_calendar
from connectors.base import (
    JSON,
    ActivityObservation,
    ConnectorError,
    CursorExpired,
    Deletion,
    Endpoints,
    FetchContext,
    Page,
    RateLimited,
    Unauthorized,
)
from connectors.registry import get_connector
from sandbox.gcal_model import Attendee, When
from sandbox.server import Sandbox
from sandbox.world import generate_world
from tests.connectors.conftest import access_token

ALICE = "alice@acme.test"


def google_ctx(
    sb: Sandbox, mailbox: str = ALICE, scopes: tuple[str, ...] = google_calendar.scopes, **kw: Any
) -> FetchContext:
    """What the sync layer hands the connector: a token from the emulator's OAuth flow, endpoints, window."""
    endpoints = Endpoints(api_url=sb.google_settings()["GOOGLE_API_URL"], ca_bundle=sb.ca_path, timeout=10)
    fields: dict[str, Any] = {"now": sb.world.now, "backfill_days": 365} | kw
    return FetchContext(access_token=access_token(sb, mailbox, scopes), endpoints=endpoints, account=mailbox, **fields)


def run_pass(ctx: FetchContext, cursor: JSON | None = None, limit: int = 50) -> list[Page]:
    """Pages until done, the cursor going through JSON between pages as the store keeps it."""
    pages = []
    for _ in range(limit):
        page = google_calendar.fetch_page("events", cursor, ctx)
        pages.append(page)
        cursor = json.loads(json.dumps(page.cursor))
        if page.done:
            return pages
    raise AssertionError("the pass never finished")


def activities(pages: list[Page]) -> list[ActivityObservation]:
    return [o for p in pages for o in p.observations if isinstance(o, ActivityObservation)]


def deletions(pages: list[Page]) -> list[str]:
    return [o.external_id for p in pages for o in p.observations if isinstance(o, Deletion)]


def owned_calendars(sb: Sandbox, member: str) -> list[str]:
    return [cid for cid, role in sb.google.calendar.lists[member] if role == "owner"]


def expected_ids(sb: Sandbox, member: str, ctx: FetchContext, meetings_only: bool = True) -> list[str]:
    """The emulator's own view: every live (meeting) instance on the member's calendars ending in the window."""
    store = sb.google.calendar
    start = ctx.now - timedelta(days=ctx.backfill_days)
    with store.lock:
        return [
            f"{cid}/{e.id}"
            for cid in owned_calendars(sb, member)
            for e in store.expanded(store.calendars[cid])
            if e.status != "cancelled" and e.start is not None and (e.end or e.start).utc() > start
            and (e.event_type == "default" or not meetings_only)
        ]  # fmt: skip


def http_requests(sb: Sandbox) -> int:
    return int(sb.google.stats_snapshot()["http_requests"])


def test_registered_and_whoami_is_the_primary_calendar(sandbox: Sandbox) -> None:
    assert get_connector("google_calendar") is google_calendar
    assert google_calendar.whoami(google_ctx(sandbox, "Bob@acme.test")) == "bob@acme.test"


def test_full_pass_emits_every_event_once_at_one_call_per_calendar(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    expected = expected_ids(sandbox, ALICE, ctx)
    before = http_requests(sandbox)
    pages = run_pass(ctx)
    emitted = [o.external_id for o in activities(pages)]
    assert sorted(emitted) == sorted(expected) and len(emitted) == len(set(emitted))
    calendars = owned_calendars(sandbox, ALICE)
    assert len(calendars) == 2 and all(len(expected) < 2500 for _ in calendars)
    assert sum(p.api_calls for p in pages) == 1 + len(calendars) == http_requests(sandbox) - before
    assert all(p.full_resync for p in pages) and [p.done for p in pages][-1]
    final = pages[-1].cursor
    assert final["phase"] == "incremental" and set(final["sync_tokens"]) == set(calendars)
    assert all(o.kind == "meeting" and o.occurred_at.tzinfo is UTC for o in activities(pages))


def test_ten_thousand_events_cost_four_calls_on_their_calendar() -> None:
    world = generate_world(seed=3, size=20, members=("dana@acme.test",))
    with Sandbox(world) as sb:
        ctx = google_ctx(sb, "dana@acme.test")
        store = sb.google.calendar
        listed = expected_ids(sb, "dana@acme.test", ctx, meetings_only=False)
        primary = [i for i in listed if i.startswith("dana@acme.test/")]
        for k in range(10_000 - len(primary)):  # exactly 10,000 events listed on the primary calendar
            start = When.timed(world.now - timedelta(days=100, minutes=k))
            store.add_event(
                "dana@acme.test", summary=f"call {k}", start=start, end=start.plus(delta=timedelta(minutes=5))
            )
        secondary = len(listed) - len(primary)
        pages = run_pass(ctx)
        assert len(activities(pages)) == len(expected_ids(sb, "dana@acme.test", ctx))
        assert sum(p.api_calls for p in pages) == 1 + 4 + math.ceil(secondary / 2500)  # calendarList, 4 + 1 pages
        assert sum(1 for p in pages if not p.done) == 4  # 2500 a page, then the next calendar


def test_incremental_sees_new_changed_and_cancelled_events(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    full = run_pass(ctx)
    cursor = full[-1].cursor
    seen = {o.external_id: o for o in activities(full)}
    store = sandbox.google.calendar
    start = When.timed(sandbox.world.now - timedelta(days=1))
    guests = [Attendee(ALICE, "", "accepted"), Attendee("dana@globex.test", "Dana", "declined")]
    new_id = store.add_event(
        ALICE, summary="Renewal", start=start, end=start.plus(delta=timedelta(hours=1)), attendees=guests
    )
    singles = [o for o in seen.values() if "_" not in o.external_id and o.external_id.startswith(ALICE + "/")]
    changed, cancelled = singles[0].external_id, singles[1].external_id
    store.modify_event(ALICE, changed.split("/", 1)[1], summary="Renamed")
    store.cancel_event(ALICE, cancelled.split("/", 1)[1])
    instance = next(o.external_id for o in seen.values() if o.subject == "Weekly 1:1")
    store.cancel_event(ALICE, instance.split("/", 1)[1])
    before = http_requests(sandbox)
    pages = run_pass(ctx, cursor)
    assert not any(p.full_resync for p in pages)
    assert sum(p.api_calls for p in pages) == 2 == http_requests(sandbox) - before  # one events.list per calendar
    got = {o.external_id: o for o in activities(pages)}
    assert set(got) == {f"{ALICE}/{new_id}", changed}
    assert got[changed].subject == "Renamed" and got[changed].dedupe_key == seen[changed].dedupe_key
    assert ("attendee", "dana@globex.test", True) in {
        (p.role, p.email, p.declined) for p in got[f"{ALICE}/{new_id}"].participants
    }
    assert sorted(deletions(pages)) == sorted([cancelled, instance])
    assert pages[-1].cursor["sync_tokens"][ALICE] != cursor["sync_tokens"][ALICE]


def test_an_unchanged_account_costs_one_call_per_calendar(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    cursor = run_pass(ctx)[-1].cursor
    (page,) = run_pass(ctx, cursor)
    assert (page.observations, page.rejections, page.done, page.api_calls) == ([], [], True, 2)
    assert page.cursor == cursor


def test_events_changed_after_leaving_the_window_are_withdrawn(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    cursor = run_pass(ctx)[-1].cursor
    store = sandbox.google.calendar
    window = ctx.now - timedelta(days=ctx.backfill_days)
    old = next(e for e in store.calendars[ALICE].events.values() if e.end is not None and e.end.utc() < window)
    store.modify_event(ALICE, old.id, summary="Edited long after")
    pages = run_pass(ctx, cursor)
    assert deletions(pages) == [f"{ALICE}/{old.id}"] and not activities(pages)


def test_recurring_all_day_lonely_untimed_and_odd_events(sandbox: Sandbox) -> None:
    store = sandbox.google.calendar
    store.add_event(ALICE, summary="Imported, no time", start=None, end=None)
    pages = run_pass(google_ctx(sandbox))
    meetings = activities(pages)
    assert [r.reason for p in pages for r in p.rejections] == ["no_time"]
    weekly = [o for o in meetings if o.subject == "Weekly 1:1"]
    assert len(weekly) == 19 and len({o.dedupe_key for o in weekly}) == 19
    series = store.calendars[ALICE].events[weekly[0].external_id.split("/")[1].split("_")[0]]
    for o in weekly:
        original = datetime.strptime(o.external_id.rsplit("_", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert o.dedupe_key == f"{series.ical_uid}@{original:%Y-%m-%dT%H:%M:%SZ}"
    assert sum(1 for o in weekly if o.dedupe_key.rsplit("@", 1)[1] != f"{o.occurred_at:%Y-%m-%dT%H:%M:%SZ}") == 1
    summit = next(o for o in meetings if o.subject and o.subject.startswith("SaaStr"))
    assert summit.occurred_at.time() == time(0, 0) and summit.occurred_at.tzinfo is UTC
    lonely = [o for o in meetings if o.subject == "Prep / focus"]
    assert lonely and all(
        o.participants == (o.participants[0],) and o.participants[0].role == "organizer" for o in lonely
    )
    assert not any(o.subject == "Out of office" for o in meetings)
    everyone = [p.email for o in meetings for p in o.participants]
    assert not any(e.endswith(".calendar.google.com") for e in everyone)  # rooms and calendars are not people
    assert any(p.declined for o in meetings for p in o.participants)
    crowd = next(o for o in meetings if o.subject == "All-hands + partners")
    assert crowd.noise == "too_many"
    assert any(p.role == "organizer" and not p.email.endswith("@acme.test") for o in meetings for p in o.participants)


def test_one_meeting_in_two_members_calendars_has_one_dedupe_key(sandbox: Sandbox) -> None:
    alice = {o.external_id.split("/", 1)[1]: o.dedupe_key for o in activities(run_pass(google_ctx(sandbox)))}
    bob = {
        o.external_id.split("/", 1)[1]: o.dedupe_key for o in activities(run_pass(google_ctx(sandbox, "bob@acme.test")))
    }
    shared = set(alice) & set(bob)
    assert shared and all(alice[i] == bob[i] for i in shared)


def test_expired_sync_token_and_vanished_calendar_raise_cursor_expired(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    cursor = run_pass(ctx)[-1].cursor
    sandbox.google.calendar.expire_sync_tokens(ALICE)
    with pytest.raises(CursorExpired, match="410"):
        google_calendar.fetch_page("events", cursor, ctx)
    cursor = run_pass(ctx)[-1].cursor  # the full pass recovers
    secondary = cursor["calendars"][1]
    sandbox.google.calendar.lists[ALICE] = [e for e in sandbox.google.calendar.lists[ALICE] if e[0] != secondary]
    with pytest.raises(CursorExpired, match="404"):
        run_pass(ctx, cursor)


@pytest.mark.parametrize(
    "cursor", [{"phase": "weird"}, {"phase": "incremental", "calendars": ["a"]}, {"calendars": []}]
)
def test_a_cursor_not_understood_restarts_the_pass(cursor: JSON, sandbox: Sandbox) -> None:
    with pytest.raises(CursorExpired):
        google_calendar.fetch_page("events", cursor, google_ctx(sandbox))


def test_unknown_stream_missing_scope_and_refused_token(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    with pytest.raises(ConnectorError, match="no stream"):
        google_calendar.fetch_page("messages", None, ctx)
    gmail_only = google_ctx(sandbox, scopes=("https://www.googleapis.com/auth/gmail.metadata",))
    with pytest.raises(ConnectorError, match="403") as denied:
        google_calendar.fetch_page("events", None, gmail_only)
    assert not isinstance(denied.value, Unauthorized)
    sandbox.google.revoke_mailbox_tokens(ALICE)
    with pytest.raises(Unauthorized) as refused:
        google_calendar.fetch_page("events", None, ctx)
    assert ctx.access_token not in str(refused.value)


def test_a_429_with_retry_after_is_rate_limited(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    sandbox.google.faults.fail_next(1, "429", retry_after=7, endpoints=["events"])
    with pytest.raises(RateLimited) as caught:
        google_calendar.fetch_page("events", None, ctx)
    assert caught.value.retry_after == 7 and "events.list: HTTP 429" in str(caught.value)
