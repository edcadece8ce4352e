"""The dashboard in a real headless chromium, over the real product on PostgreSQL and Redis.

A seeded scenario: three reps synced by a real `dramatiq worker` process; Bob's Gmail page job then
fails MAX_ATTEMPTS times against the sandbox (HTTP 500) and lands in Redis's dead-letter queue; Carol's
Gmail chain is left running without progress for two hours (stalled). The page shows both; its
requeue button puts the dead letter back, and once the fault is cleared the job succeeds.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from sync.inprocess import wait_for_chains
from sync.ops_actions import retry_now
from sync.pipeline import MAX_ATTEMPTS
from sync.scheduler import start_all
from tests.ops_ui.conftest import (
    ADMIN_KEY,
    DOMAIN,
    GMAIL_CALLS,
    MEMBERS,
    ORG,
    connection_id,
    set_state,
    small_world,
    start_worker,
    state,
    wait_until,
)
from web.stack import Stack, running_stack


def metrics(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`/metrics` scraped and parsed with Prometheus's own text parser."""
    response = requests.get(
        stack.rt.settings.public_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def provider_tokens(stack: Stack) -> list[str]:
    """Every access and refresh token the Google sandbox ever issued to the product."""
    google = stack.sandbox.google
    return [t for t in [*google.access_tokens, *google.refresh_tokens] if len(t) > 8]


def dead_count(redis_url: str) -> int:
    return int(redis.Redis.from_url(redis_url).zcard("dramatiq:sync.XQ"))


def test_dashboard_shows_stalled_and_failing_and_requeues_a_dead_letter_that_then_succeeds(
    tmp_path: Path, pg_url: str, redis_url: str, browser: Any
) -> None:
    with running_stack(
        data_dir=tmp_path / "stack",
        world=small_world(),
        database_url=pg_url,
        broker_url=redis_url,
        workers=0,
        admin_key=ADMIN_KEY,
        page_size=100,
        lease_seconds=10,
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        for email in MEMBERS:
            stack.connect(ORG, email)
        log = tmp_path / "worker.log"
        worker = start_worker(stack.rt.settings, log)
        try:
            start_all(stack.rt)
            assert wait_for_chains(stack.rt, timeout=240, reconcile_every=5).failed == 0, log.read_text()[-3000:]
            bob, carol = connection_id(stack, MEMBERS[1], "gmail"), connection_id(stack, MEMBERS[2], "gmail")

            # Bob's Gmail page fails every try: MAX_ATTEMPTS failures, then Redis's dead-letter queue.
            stack.sandbox.google.faults.fail_randomly(1.0, "500", endpoints=GMAIL_CALLS)
            actor = stack.broker.get_actor("sync_page")
            send, stack.rt.enqueue = (
                stack.rt.enqueue,
                lambda c, s, v, _d: actor.send_with_options(
                    args=(c, s, v),
                    min_backoff=100,
                    max_backoff=400,  # the real job, with short retry waits
                ),
            )
            retry_now(stack.rt, bob, "messages", actor="test")
            stack.rt.enqueue = send
            wait_until(lambda: dead_count(redis_url) == 1, 120, "the dead letter", log)
            failed = state(stack, bob, "messages")
            assert (failed.failed, failed.attempts, failed.running) == (True, MAX_ATTEMPTS, False)
            assert failed.last_error and "500" in failed.last_error

            # Carol's Gmail chain is running but has stored nothing for two hours.
            set_state(
                stack,
                carol,
                "messages",
                running=True,
                lease_owner=None,
                lease_until=None,
                last_progress_at=stack.rt.clock() - timedelta(hours=2),
            )
            before = metrics(stack)
            assert before[("sxsync_dead_letters", (("queue", "sync"),))] == 1
            assert before[("sxsync_streams_stalled", ())] == 1
            assert before[("sxsync_streams_failed", ())] == 1

            page = browser.new_page()
            base = stack.rt.settings.public_url
            first = page.goto(base + "/ops")
            assert first is not None and first.status == 401
            assert "alice@acme.test" not in page.content()
            page.fill("#key", "not-the-key")
            page.click("button[type=submit]")
            assert "That is not the admin key" in page.inner_text("#login-error")
            assert "bob@acme.test" not in page.content()
            page.fill("#key", ADMIN_KEY)
            page.click("button[type=submit]")
            page.wait_for_selector("#connections")
            assert page.locator("meta[http-equiv=refresh]").count() == 1  # the page refreshes itself
            page.goto(base + "/ops?refresh=0")  # but not while this test reads it on a busy machine
            cookie = next(c for c in page.context.cookies() if c["name"] == "sxsync_ops")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and ADMIN_KEY not in cookie["value"]

            assert page.get_attribute(f"#connections tr[data-connection='{bob}']", "data-status") == "failed"
            assert page.get_attribute(f"#connections tr[data-connection='{carol}']", "data-status") == "stalled"
            assert page.locator(f"#stalled tr[data-connection='{carol}']").count() == 1
            assert "no page stored for 1" in page.inner_text(f"#connections tr[data-connection='{carol}']")
            assert "HTTP 500" in page.inner_text(f"#connections tr[data-connection='{bob}'] td.err")
            assert page.inner_text("#tile-dead") == "1"
            assert page.inner_text("#queues tr[data-queue='sync'] td.dead") == "1"
            assert page.locator("#chart svg").count() == 1
            html = page.content()
            for secret in [*provider_tokens(stack), ADMIN_KEY]:
                assert secret not in html
            assert stack.sandbox.google.access_tokens, "the scan must have tokens to look for"

            # Clear the fault, then requeue Bob's dead letter from the page: the job now succeeds.
            stack.sandbox.google.faults.clear()
            page.click(f"#connections tr[data-connection='{bob}'] button[data-action='requeue']")
            page.wait_for_selector("#flash")
            assert "1 dead letter(s) requeued" in page.inner_text("#flash")

            def bob_recovered() -> bool:
                s = state(stack, bob, "messages")
                return not s.running and not s.failed and s.attempts == 0 and s.version > failed.version

            wait_until(bob_recovered, 60, "the requeued job to succeed", log)
            assert dead_count(redis_url) == 0
            page.goto(base + "/ops?refresh=0")
            assert page.get_attribute(f"#connections tr[data-connection='{bob}']", "data-status") == "idle"
            assert page.get_attribute(f"#connections tr[data-connection='{carol}']", "data-status") == "stalled"
            assert page.inner_text("#tile-dead") == "0"
            after = metrics(stack)
            assert after[("sxsync_dead_letters", (("queue", "sync"),))] == 0
            assert after[("sxsync_streams_failed", ())] == 0
            html = page.content()
            for secret in provider_tokens(stack):
                assert secret not in html
            page.close()
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
