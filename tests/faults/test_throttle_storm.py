"""R8: a throttle storm (40 % 429 with Retry-After 1-30 s, 10 % 503) on the Gmail API while real worker
processes backfill: no request before a Retry-After expired (the emulator counts them), nothing
dead-lettered, the sync completes, and the store equals a clean run's by natural key.

Long mode (`SXSYNC_FAULTS_LONG=1`): the storm lasts 10 minutes with Retry-After 1-30 s, as the issue asks.
Short mode (CI) fits the storm into the suite's minute: 20 s of it, Retry-After 1-3 s (the same rates).
Redis: database 8 of the test Redis (the shared budgets live there too, as in production).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.actors import SYNC_QUEUE
from sync.dead_letters import list_dead_letters
from sync.scheduler import start_all
from tests.conftest import redis_database
from tests.faults.conftest import LEASE_SECONDS, LONG, MEMBERS, PAGE_SIZE, Scenario, seed, world
from tests.faults.harness import Keys, Supervisor, compare, natural_keys, states
from web.stack import running_stack

pytestmark = pytest.mark.faults
STORM_SECONDS = 600 if LONG else 20
RETRY_AFTER = (1, 30) if LONG else (1, 3)
GMAIL_API = ("profile", "list", "history", "batch")  # every Gmail HTTP request (not OAuth: the token endpoint
# keys its Retry-After by client address, shared by every account)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Real Redis on database 8 (R8's own), flushed around the test."""
    yield from redis_database(8)


@pytest.mark.timeout(STORM_SECONDS + 420)  # the storm, then up to 300 s to finish, and the stack around it
def test_a_throttle_storm_is_waited_out_without_an_early_request_and_the_store_equals_a_clean_run(
    tmp_path: Path, pg_url: str, redis_url: str, reference: dict[tuple[str, ...], Keys], scenario: Scenario
) -> None:
    scenario.name = f"R8 storm {STORM_SECONDS}s 429@40% RA {RETRY_AFTER[0]}-{RETRY_AFTER[1]}s 503@10%"
    started = time.monotonic()
    with running_stack(
        data_dir=tmp_path / "run", world=world(), database_url=pg_url, broker_url=redis_url, workers=0,
        page_size=PAGE_SIZE, lease_seconds=LEASE_SECONDS,
    ) as stack:  # fmt: skip
        seed(stack, MEMBERS)
        faults = stack.sandbox.google.faults
        low, high = RETRY_AFTER
        faults.fail_randomly(0.4, "429", retry_after=low, retry_after_max=high, endpoints=GMAIL_API)
        faults.fail_randomly(0.1 / 0.6, "503", retry_after=low, retry_after_max=high, endpoints=GMAIL_API)
        with Supervisor(stack.rt.settings, tmp_path / "worker.log", threads=4) as worker:
            start_all(stack.rt)
            storm_ends = time.monotonic() + STORM_SECONDS
            worker.drive(
                stack, timeout=STORM_SECONDS + 5, until=lambda p: p.running == 0 or time.monotonic() >= storm_ends
            )
            faults.clear()  # the storm passes; the sync must finish on its own
            final = worker.drive(stack, timeout=300 if LONG else 60)
        storm = faults.snapshot()
        dead = list_dead_letters(stack.broker, SYNC_QUEUE)
        throttled = sum(s.throttled_total for s in states(stack))
        stored = natural_keys(stack)
        requests = stack.sandbox.google.stats_snapshot()["http_requests"]
    diff = compare(reference[MEMBERS], stored)
    scenario.figures |= {
        "requests": requests,
        "injected_429": storm["injected"].get("429", 0),
        "injected_503": storm["injected"].get("503", 0),
        "early": storm["early_retries"],
        "throttled_pages": throttled,
        "dead": len(dead),
        "lost": diff.lost,
        "doubled": diff.doubled,
        "unexpected": diff.unexpected,
        "deaths": worker.deaths,
        "seconds": round(time.monotonic() - started, 1),
    }
    assert storm["injected"].get("429", 0) >= 5 and storm["injected"].get("503", 0) >= 1, "no storm happened"
    assert storm["early_retries"] == 0, storm["early_log"][:5]
    assert not dead, dead[:3]
    assert (final.running, final.failed) == (0, 0)
    assert diff.clean, diff.examples
