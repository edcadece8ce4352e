"""The connectors' HTTP layers spend from and report to the account's shared budget (sync/ratelimit.py),
over real HTTP against the emulators: a Retry-After one stream hears keeps the account's other streams away."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connectors import gmail, google_calendar, hubspot
from connectors.base import NO_QUOTA, RateLimited
from sandbox.server import Sandbox
from sync.ratelimit import AccountQuota, Limit, LocalBuckets, rolling
from tests.connectors.contract_support import context_for

ALICE = "alice@acme.test"


def test_a_retry_after_heard_on_gmail_keeps_the_mailboxs_calendar_away_until_it_expires(sandbox: Sandbox) -> None:
    quota = AccountQuota(LocalBuckets(), f"google:{ALICE}", None, max_sleep=0.5)
    ctx = context_for(sandbox, "google", ALICE, quota=quota)
    google = sandbox.google
    google.faults.fail_next(1, "429", retry_after=30, endpoints=("profile",))  # Gmail's first call of a pass
    with pytest.raises(RateLimited):
        gmail.fetch_page("messages", None, ctx)
    calls = google.stats.http_requests
    with pytest.raises(RateLimited) as paced:  # the calendar's page waits for the mailbox's Retry-After ...
        google_calendar.fetch_page("events", None, ctx)
    assert paced.value.retry_after > 20 and google.stats.http_requests == calls  # ... without a request
    assert google.faults.early_retries == 0
    google_calendar.fetch_page("events", None, replace(ctx, quota=NO_QUOTA))  # without the shared budget:
    assert google.faults.early_retries >= 1  # the emulator counts the early requests


def test_gmail_batches_spend_their_quota_units_and_a_throttled_part_blocks_the_mailbox(sandbox: Sandbox) -> None:
    buckets = LocalBuckets()
    quota = AccountQuota(buckets, f"google:{ALICE}", Limit(1e-9, 1e6), max_sleep=0.5)
    ctx = context_for(sandbox, "google", ALICE, quota=quota, page_size=100)
    page = gmail.fetch_page("messages", None, ctx)
    spent = 1e6 - buckets._states[quota.key].level
    charged = sandbox.google.stats.quota_units  # the units Gmail charged: profile 1, list 5, get 5 each
    assert charged > 0 and spent == pytest.approx(charged, abs=0.01)  # less the trickle the bucket refilled meanwhile
    sandbox.google.faults.fail_next(1, "429", retry_after=30, scope="part", endpoints=("get",))
    page = gmail.fetch_page("messages", page.cursor, ctx)
    assert page.retry_after > 0 and buckets.take(quota.key, 1, quota.limit) > 20


def test_hubspot_answers_teach_the_accounts_window_and_what_is_left(sandbox: Sandbox) -> None:
    sandbox.hubspot.configure(burst_limit=50, burst_interval_ms=10_000)
    buckets = LocalBuckets()
    quota = AccountQuota(buckets, f"hubspot:{ALICE}", Limit(1e-9, 1e6), max_sleep=0.5)
    ctx = context_for(sandbox, "hubspot", ALICE, quota=quota)
    hubspot.fetch_page("owners", None, ctx)
    learned = buckets._states[quota.key].learned
    assert learned == rolling(50, 10)  # the 50 calls per 10 s the headers announced
