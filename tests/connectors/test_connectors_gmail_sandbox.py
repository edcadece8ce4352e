"""The Gmail connector over real HTTP (google-api-python-client, httplib2) against the Google emulator."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from connectors import gmail
from connectors.base import (
    JSON,
    ActivityObservation,
    ConnectorError,
    CursorExpired,
    Deletion,
    FetchContext,
    Page,
    RateLimited,
    TransientError,
    Unauthorized,
)
from connectors.registry import CONNECTORS, get_connector
from sandbox.server import Sandbox
from sandbox.world import generate_world

ALICE = "alice@acme.test"
CtxFor = Callable[..., FetchContext]


def visible_ids(sb: Sandbox, mailbox: str, since: datetime | None = None) -> list[str]:
    """The emulator's own view: ids messages.list would return (no spam/trash), newest first."""
    with sb.google.lock:
        entries = sorted(sb.google.mailbox(mailbox).entries.values(), key=lambda e: e.key)
        return [
            e.msg.id
            for e in entries
            if not {"SPAM", "TRASH"} & set(e.label_ids)
            and (since is None or e.msg.internal_date_ms >= since.timestamp() * 1000)
        ]


def full_pass_calls(fetched: int, page_size: int = 500) -> int:
    """A full pass that reads `fetched` listed ids: getProfile, its listing pages (the first of 50), a batch per 100."""
    sizes, size = [], min(gmail.FIRST_PAGE_MAX, page_size)
    while fetched > 0:
        sizes.append(min(size, fetched))
        fetched, size = fetched - size, page_size
    return 1 + len(sizes) + sum(math.ceil(s / 100) for s in sizes)


def run_pass(ctx: FetchContext, cursor: JSON | None = None, limit: int = 100) -> list[Page]:
    pages = []
    for _ in range(limit):
        page = gmail.fetch_page("messages", cursor, ctx)
        pages.append(page)
        cursor = page.cursor
        if page.done:
            return pages
    raise AssertionError("the pass never finished")


def run_pass_as_the_sync_layer(ctx: FetchContext, cursor: JSON | None = None, limit: int = 100) -> list[Page]:
    """run_pass, storing each cursor as JSON and waiting each page's `retry_after` before the next call."""
    pages = []
    for _ in range(limit):
        page = gmail.fetch_page("messages", cursor, ctx)
        pages.append(page)
        if page.done:
            return pages
        cursor = json.loads(json.dumps(page.cursor))
        time.sleep(page.retry_after)
    raise AssertionError("the pass never finished")


def gets(sb: Sandbox, mailbox: str) -> int:
    """messages.get operations the emulator served (answered) for `mailbox`, batched or not."""
    return int(sb.google.stats_snapshot()["mailboxes"].get(mailbox, {}).get("ops", {}).get("get", 0))


def ids_of(pages: list[Page], kind: type) -> list[str]:
    return [o.external_id for p in pages for o in p.observations if isinstance(o, kind)]


def http_requests(sb: Sandbox) -> int:
    return int(sb.google.stats_snapshot()["http_requests"])


def test_registry_serves_the_gmail_module() -> None:
    assert get_connector("gmail") is gmail and CONNECTORS["gmail"].scopes == gmail.scopes
    with pytest.raises(KeyError, match="known"):
        get_connector("nope")


def test_whoami_is_the_normalized_profile_address(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    assert gmail.whoami(ctx_for("Bob@ACME.test")) == "bob@acme.test"


def test_full_backfill_emits_every_message_once_at_the_minimum_call_count(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE, page_size=100, backfill_days=10_000)  # small pages: several list calls
    expected = visible_ids(sandbox, ALICE)
    before = http_requests(sandbox)
    pages = run_pass(ctx)
    emitted = ids_of(pages, ActivityObservation)
    assert sorted(emitted) == sorted(expected)
    assert len(emitted) == len(set(emitted))
    n = len(expected)
    assert [p.full_resync for p in pages] == [True] * len(pages)
    assert [p.done for p in pages] == [False] * (len(pages) - 1) + [True]
    assert full_pass_calls(n, page_size=100) == sum(p.api_calls for p in pages)
    assert http_requests(sandbox) - before == sum(p.api_calls for p in pages)
    assert pages[-1].cursor == {"phase": "incremental", "history_id": pages[0].cursor["history_id"]}
    assert all(
        isinstance(o.occurred_at, datetime) and o.occurred_at.tzinfo
        for o in (o for p in pages for o in p.observations if isinstance(o, ActivityObservation))
    )


def test_backfill_window_stops_the_pass_at_the_first_old_message(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE)  # 365 days, pages of 500
    oldest = ctx.now - timedelta(days=ctx.backfill_days)
    in_window = visible_ids(sandbox, ALICE, since=oldest)
    assert 0 < len(in_window) < len(visible_ids(sandbox, ALICE))
    pages = run_pass(ctx)
    assert sorted(ids_of(pages, ActivityObservation)) == sorted(in_window)
    fetched = len(in_window) + 1  # up to and including the first message past the window
    assert sum(p.api_calls for p in pages) == full_pass_calls(fetched)


def test_a_thousand_messages_cost_three_lists_and_eleven_batches(make_context: CtxFor) -> None:
    world = generate_world(seed=3, size=1100, members=("dana@acme.test",))
    with Sandbox(world) as sb:
        ctx = make_context(sb, "dana@acme.test", backfill_days=10_000)
        ids = visible_ids(sb, "dana@acme.test")
        assert len(ids) >= 1000
        for message_id in ids[1000:]:  # trim to exactly 1,000 listed messages
            sb.google.delete_message("dana@acme.test", message_id)
        pages = run_pass(ctx)
        assert len(ids_of(pages, ActivityObservation)) == 1000
        assert sum(p.api_calls for p in pages) == 1 + 3 + 11  # lists of 50, 500, 450; batches 1 + 5 + 5


def test_incremental_sees_new_deleted_trashed_and_untrashed_mail(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE)
    cursor = run_pass(ctx)[-1].cursor
    google = sandbox.google
    new_id = google.deliver(sender="Dana Reyes <dana@globex.test>", to=[ALICE], subject="Renewal")[ALICE]
    old = visible_ids(sandbox, ALICE)
    google.delete_message(ALICE, old[1])
    google.trash_message(ALICE, old[2])
    google.trash_message(ALICE, old[3])
    google.modify_labels(ALICE, old[3], remove=["TRASH"], add=["INBOX"])
    google.modify_labels(ALICE, old[4], add=["STARRED"])
    gone_meanwhile = google.deliver(sender="x@globex.test", to=[ALICE])[ALICE]
    google.delete_message(ALICE, gone_meanwhile)
    before = http_requests(sandbox)
    (page,) = run_pass(ctx, cursor)
    assert not page.full_resync and page.done
    assert ids_of([page], ActivityObservation) == [new_id, old[3]]
    assert sorted(ids_of([page], Deletion)) == sorted([old[1], old[2], gone_meanwhile])
    new = next(o for o in page.observations if isinstance(o, ActivityObservation) and o.external_id == new_id)
    assert new.subject == "Renewal" and ("from", "dana@globex.test") in {(p.role, p.email) for p in new.participants}
    assert page.api_calls == 2 == http_requests(sandbox) - before  # history + one batch
    assert int(page.cursor["history_id"]) > int(cursor["history_id"])


def test_an_unchanged_mailbox_costs_exactly_one_call(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE)
    cursor = run_pass(ctx)[-1].cursor
    before = http_requests(sandbox)
    page = gmail.fetch_page("messages", cursor, ctx)
    assert (page.observations, page.rejections, page.cursor, page.done, page.api_calls) == ([], [], cursor, True, 1)
    assert http_requests(sandbox) - before == 1


def test_history_pages_chain_until_caught_up(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE)
    cursor = run_pass(ctx)[-1].cursor
    for message_id in visible_ids(sandbox, ALICE)[:300]:  # 600 label records: more than one history page
        sandbox.google.modify_labels(ALICE, message_id, add=["STARRED"])
        sandbox.google.modify_labels(ALICE, message_id, remove=["STARRED"])
    delivered = [sandbox.google.deliver(sender="z@globex.test", to=[ALICE])[ALICE] for _ in range(3)]
    pages = run_pass(ctx, cursor)
    assert len(pages) == 2 and pages[0].cursor.get("page_token") and not pages[0].done
    assert ids_of(pages, ActivityObservation) == delivered


def test_expired_history_raises_cursor_expired(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE)
    cursor = run_pass(ctx)[-1].cursor
    sandbox.google.deliver(sender="dana@globex.test", to=[ALICE])
    sandbox.google.expire_history(ALICE)
    with pytest.raises(CursorExpired, match="404"):
        gmail.fetch_page("messages", cursor, ctx)


@pytest.mark.parametrize("cursor", [{"phase": "weird"}, {"phase": "incremental"}, {"history_id": "5"}])
def test_a_cursor_not_understood_restarts_the_pass(cursor: JSON, sandbox: Sandbox, ctx_for: CtxFor) -> None:
    with pytest.raises(CursorExpired):
        gmail.fetch_page("messages", cursor, ctx_for(ALICE))


def test_unknown_stream_is_an_error(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    with pytest.raises(ConnectorError, match="no stream"):
        gmail.fetch_page("calendar", None, ctx_for(ALICE))


def test_throttled_batch_parts_are_retried_after_retry_after(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE)
    expected = visible_ids(sandbox, ALICE, since=ctx.now - timedelta(days=ctx.backfill_days))
    sandbox.google.faults.fail_next(3, "429", retry_after=1, scope="part", endpoints=["get"])
    sandbox.google.faults.fail_next(1, "500", scope="part", endpoints=["get"])
    pages = run_pass(ctx)
    assert sorted(ids_of(pages, ActivityObservation)) == sorted(expected)
    snapshot = sandbox.google.stats_snapshot()
    assert snapshot["faults"]["injected"] == {"429": 3, "500": 1}
    assert snapshot["early_retries"] == 0  # nobody came back before Retry-After
    fetched = len(expected) + 1
    assert sum(p.api_calls for p in pages) == full_pass_calls(fetched) + 1  # one retry batch


def test_unthrottled_calls_stay_one_profile_the_lists_and_the_batches(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE, backfill_days=10_000)  # pages of 500
    n = len(visible_ids(sandbox, ALICE))
    pages = run_pass(ctx)
    assert sum(p.api_calls for p in pages) == full_pass_calls(n)
    assert all(p.retry_after == 0 and "pending" not in p.cursor for p in pages)
    assert gets(sandbox, ALICE) == n


def test_parts_throttled_beyond_the_budget_come_back_pending_in_a_json_cursor(
    sandbox: Sandbox, ctx_for: CtxFor
) -> None:
    ctx = ctx_for(ALICE, backfill_days=10_000, page_size=300)
    expected = visible_ids(sandbox, ALICE)
    assert len(expected) > 50 + 300
    opening = gmail.fetch_page("messages", None, ctx)  # the pass's first page: 50 ids
    sandbox.google.faults.fail_next(1, "429", retry_after=30, scope="part", endpoints=["get"])
    first = gmail.fetch_page("messages", opening.cursor, ctx)
    # the first batch's other 99 answers are kept; its throttled part and the unsent batches wait
    assert (first.done, first.retry_after, first.api_calls) == (False, 30, 2)  # list, one batch
    pending, answered = first.cursor["pending"], ids_of([first], ActivityObservation)
    assert len(answered) == 99 and len(pending) == 201 and not set(pending) & set(answered)
    assert first.cursor["page_token"] and first.cursor["window_ended"] is False
    stored = json.loads(json.dumps(first.cursor))
    assert stored == first.cursor
    pending_page = gmail.fetch_page("messages", stored, ctx)  # the pending ids alone: no list call
    assert pending_page.api_calls == 3 and not pending_page.done and pending_page.retry_after == 0
    assert pending_page.cursor == {
        "phase": "full",
        "history_id": stored["history_id"],
        "page_token": stored["page_token"],
    }
    pages = [opening, first, pending_page, *run_pass(ctx, pending_page.cursor)]
    emitted = ids_of(pages, ActivityObservation)
    assert sorted(emitted) == sorted(expected) and len(emitted) == len(set(emitted))
    assert gets(sandbox, ALICE) == len(expected)  # nothing answered was asked for again


def test_a_pending_history_page_advances_the_history_id_only_once_fetched(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE)
    cursor = run_pass(ctx)[-1].cursor
    delivered = [sandbox.google.deliver(sender="z@globex.test", to=[ALICE])[ALICE] for _ in range(3)]
    sandbox.google.faults.fail_next(1, "429", retry_after=30, scope="part", endpoints=["get"])
    first = gmail.fetch_page("messages", cursor, ctx)
    assert not first.done and first.retry_after == 30 and first.cursor["pending"] == delivered[:1]
    assert first.cursor["history_id"] == cursor["history_id"] and first.cursor.get("latest_history_id")
    second = gmail.fetch_page("messages", json.loads(json.dumps(first.cursor)), ctx)
    assert second.done and second.api_calls == 1 and second.retry_after == 0
    assert second.cursor == {"phase": "incremental", "history_id": first.cursor["latest_history_id"]}
    assert int(second.cursor["history_id"]) > int(cursor["history_id"])
    assert sorted(ids_of([first, second], ActivityObservation)) == sorted(delivered)


@pytest.mark.parametrize("backfill_days", [10_000, 365])
def test_a_40_percent_part_storm_completes_fetching_each_message_once(make_context: CtxFor, backfill_days: int) -> None:
    world = generate_world(seed=3, size=150, members=("dana@acme.test",))
    with Sandbox(world) as sb:
        ctx = make_context(sb, "dana@acme.test", backfill_days=backfill_days)
        in_window = visible_ids(sb, "dana@acme.test", since=ctx.now - timedelta(days=backfill_days))
        assert len(in_window) > 0
        sb.google.faults.fail_randomly(0.4, "429", retry_after=1, scope="part", endpoints=["get"])
        pages = run_pass_as_the_sync_layer(ctx)
        emitted = ids_of(pages, ActivityObservation)
        assert sorted(emitted) == sorted(in_window) and len(emitted) == len(set(emitted))
        snapshot = sb.google.stats_snapshot()
        assert snapshot["faults"]["injected"]["429"] > 0 and snapshot["early_retries"] == 0
        assert any(p.cursor.get("pending") and p.retry_after == 1 for p in pages)
        assert [p.done for p in pages] == [False] * (len(pages) - 1) + [True]
        if backfill_days == 10_000:
            assert gets(sb, "dana@acme.test") == len(in_window)  # every answered part kept, none asked again
        else:
            assert len(in_window) < len(visible_ids(sb, "dana@acme.test"))
            assert gets(sb, "dana@acme.test") < len(in_window) + 100  # at most the batch crossing the window


def test_a_whole_call_429_is_rate_limited_with_its_retry_after(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE)
    sandbox.google.faults.fail_next(1, "429", retry_after=7, endpoints=["list"])
    with pytest.raises(RateLimited) as caught:
        gmail.fetch_page("messages", None, ctx)
    assert caught.value.retry_after == 7
    assert "HTTP 429" in str(caught.value) and "rateLimitExceeded" in str(caught.value)


def test_a_403_user_rate_limit_without_retry_after_gets_a_backoff_hint(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    sandbox.google.faults.fail_next(1, "403", endpoints=["profile"])
    with pytest.raises(RateLimited) as caught:
        gmail.fetch_page("messages", None, ctx_for(ALICE))
    assert caught.value.retry_after == 1.0


def test_a_503_on_the_batch_itself_keeps_the_listing_and_waits_out_the_retry_after(
    sandbox: Sandbox, ctx_for: CtxFor
) -> None:
    sandbox.google.faults.fail_next(1, "503", retry_after=4, endpoints=["batch"])
    page = gmail.fetch_page("messages", None, ctx_for(ALICE))
    assert page.retry_after == 4 and not page.done and page.observations == []
    assert len(page.cursor["pending"]) > 0  # the listed ids are kept: the list call is not repeated
    after = gmail.fetch_page("messages", json.loads(json.dumps(page.cursor)), ctx_for(ALICE))
    assert after.observations and not after.cursor.get("pending")


def test_a_refused_token_is_unauthorized_and_never_echoed(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE)
    sandbox.google.revoke_mailbox_tokens(ALICE)
    for call in (lambda: gmail.fetch_page("messages", None, ctx), lambda: gmail.whoami(ctx)):
        with pytest.raises(Unauthorized) as caught:
            call()
        assert "401" in str(caught.value) and ctx.access_token not in str(caught.value)


def test_a_token_refused_inside_a_batch_is_unauthorized(
    sandbox: Sandbox, ctx_for: CtxFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = ctx_for(ALICE)
    cursor = run_pass(ctx)[-1].cursor
    sandbox.google.deliver(sender="dana@globex.test", to=[ALICE])
    calls = {"n": 0}
    authenticate = sandbox.google.authenticate

    def refuse_after_history(token: str | None) -> object:  # the token dies between two calls
        calls["n"] += 1
        return authenticate(token) if calls["n"] == 1 else None

    monkeypatch.setattr(sandbox.google, "authenticate", refuse_after_history)
    with pytest.raises(Unauthorized):
        gmail.fetch_page("messages", cursor, ctx)


def test_a_non_json_502_is_a_connector_error_with_context(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    ctx = ctx_for(ALICE)
    sandbox.google.faults.fail_next(1, "502html", endpoints=["list"])
    with pytest.raises(TransientError) as caught:
        gmail.fetch_page("messages", None, ctx)
    text = str(caught.value)
    assert text.startswith("gmail users.messages.list: HTTP 502: non-JSON error body: '<!DOCTYPE html>")
    assert len(text) < 320 and ctx.access_token not in text


def test_a_closed_port_is_a_transient_error(make_context: CtxFor) -> None:
    world = generate_world(seed=2, size=20)
    with Sandbox(world) as sb:
        ctx = make_context(sb, "alice@acme.test")
    with pytest.raises(TransientError):
        gmail.fetch_page("messages", None, ctx)


def test_over_tls_with_the_sandbox_ca(make_context: CtxFor) -> None:
    world = generate_world(seed=2, size=60)
    with Sandbox(world, tls=True) as sb:
        ctx = make_context(sb, "alice@acme.test", backfill_days=10_000)
        assert sb.ca_path and ctx.endpoints.api_url.startswith("https://")
        pages = run_pass(ctx)
        assert sorted(ids_of(pages, ActivityObservation)) == sorted(visible_ids(sb, "alice@acme.test"))


def test_sandbox_world_rejections_are_reported_not_raised(sandbox: Sandbox, ctx_for: CtxFor) -> None:
    pages = run_pass(ctx_for(ALICE, backfill_days=10_000))
    rejections = [r for p in pages for r in p.rejections]
    assert rejections and {r.source for r in rejections} == {"gmail"}
    observations = [o for p in pages for o in p.observations if isinstance(o, ActivityObservation)]
    assert {o.noise for o in observations} >= {None, "automated", "list"}
    assert all(o.occurred_at.tzinfo is UTC for o in observations)
