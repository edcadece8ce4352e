"""R6: every page message delivered twice and every page job run twice: the store equals a single delivery's.

Dramatiq is at-least-once: a message can arrive twice (a redelivery racing a slow ack) and a job can
run twice (a retry after a late failure). Both are forced here on every message of a whole backfill,
on real Redis and PostgreSQL with worker threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import sync.actors
from sync.pipeline import run_page
from sync.runtime import Enqueue
from sync.scheduler import start_all
from tests.faults.conftest import LEASE_SECONDS, MEMBERS, PAGE_SIZE, Scenario, seed, world
from tests.faults.harness import Keys, compare, natural_keys
from web.stack import running_stack

pytestmark = pytest.mark.faults


class Doubler:
    """Counts what it doubles: messages sent twice, jobs run twice."""

    def __init__(self) -> None:
        self.sent = 0
        self.runs = 0
        self._lock = threading.Lock()

    def sends(self, enqueue: Enqueue) -> Enqueue:
        def twice(connection_id: int, stream: str, cursor_version: int, delay: float) -> None:
            with self._lock:
                self.sent += 2
            enqueue(connection_id, stream, cursor_version, delay)
            enqueue(connection_id, stream, cursor_version, delay)

        return twice

    def runs_twice(self, run_page: Callable[..., object]) -> Callable[..., None]:
        def twice(*args: object) -> None:
            with self._lock:
                self.runs += 2
            run_page(*args)
            run_page(*args)

        return twice


def test_every_message_delivered_twice_and_every_job_run_twice_store_what_one_delivery_stores(
    tmp_path: Path,
    pg_url: str,
    redis_url: str,
    reference: dict[tuple[str, ...], Keys],
    scenario: Scenario,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario.name = "R6 every message twice, every job twice"
    members = MEMBERS[:2]
    doubler = Doubler()
    monkeypatch.setattr(sync.actors, "run_page", doubler.runs_twice(run_page))
    started = time.monotonic()
    with running_stack(
        data_dir=tmp_path / "run", world=world(), database_url=pg_url, broker_url=redis_url, workers=2,
        page_size=PAGE_SIZE, lease_seconds=LEASE_SECONDS,
        read_ahead_pages=1,  # one page a job, so that every page's own message is delivered and run twice
    ) as stack:
        seed(stack, members)
        assert stack.rt.enqueue is not None
        stack.rt.enqueue = doubler.sends(stack.rt.enqueue)
        start_all(stack.rt)
        final = stack.sync(timeout=240)
        stored = natural_keys(stack)
    diff = compare(reference[members], stored)
    scenario.figures |= {
        "messages": doubler.sent,
        "job_runs": doubler.runs,
        "pages": final.pages,
        "expected": diff.expected,
        "lost": diff.lost,
        "doubled": diff.doubled,
        "unexpected": diff.unexpected,
        "seconds": round(time.monotonic() - started, 1),
    }
    assert final.failed == 0
    assert doubler.runs >= 2 * final.pages > 0, "every stored page ran at least twice"
    assert diff.clean, diff.examples
