"""R1: each failpoint fired in a real worker process (SIGKILL): the sync completes, 0 lost, 0 doubled.

Random kills rarely land between a commit and its ack; these land exactly there (and after the fetch,
after the next page's enqueue, between a token response and its save). The worker is restarted
after each death; the store must equal a clean run's by natural key.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from models.failpoints import hits
from sync.scheduler import start_all
from tests.faults.conftest import LEASE_SECONDS, LONG, MEMBERS, PAGE_SIZE, Scenario, seed, world
from tests.faults.harness import Keys, Supervisor, compare, expire_access_tokens, natural_keys, states
from web.stack import running_stack

pytestmark = pytest.mark.faults
TIMES = 3 if LONG else 1
POINTS = ("after_fetch", "after_commit", "after_checkpoint", "after_token_response")


@pytest.mark.parametrize("point", POINTS)
def test_a_failpoint_killing_the_worker_loses_and_doubles_nothing(
    point: str,
    tmp_path: Path,
    pg_url: str,
    redis_url: str,
    reference: dict[tuple[str, ...], Keys],
    scenario: Scenario,
) -> None:
    scenario.name = f"R1 {point}=kill:{TIMES}"
    members = MEMBERS[:2]
    started = time.monotonic()
    with running_stack(
        data_dir=tmp_path / "run", world=world(), database_url=pg_url, broker_url=redis_url, workers=0,
        page_size=PAGE_SIZE, lease_seconds=LEASE_SECONDS,
    ) as stack:
        seed(stack, members)
        if point == "after_token_response":
            expire_access_tokens(stack)  # every first page job refreshes its token first
        google = stack.sandbox.google
        refreshes_before = google.token_calls["refresh_token"]
        failpoint_dir = tmp_path / "failpoints"
        failpoint_dir.mkdir()
        with Supervisor(
            stack.rt.settings, tmp_path / "worker.log", failpoints=f"{point}=kill:{TIMES}", failpoint_dir=failpoint_dir
        ) as worker:
            start_all(stack.rt)
            final = worker.drive(stack, timeout=150)
        reached = hits(failpoint_dir, point)
        scenario.figures |= {"kills": worker.deaths, "reached": reached, "pages": final.pages}
        if point == "after_token_response":
            scenario.figures["refreshes"] = google.token_calls["refresh_token"] - refreshes_before
        stored = natural_keys(stack)
        leftover = [(s.connection_id, s.crash_count) for s in states(stack) if s.crash_count or s.crash_version]
    diff = compare(reference[members], stored)
    scenario.figures |= {
        "expected": diff.expected,
        "lost": diff.lost,
        "doubled": diff.doubled,
        "unexpected": diff.unexpected,
        "failed": final.failed,
        "seconds": round(time.monotonic() - started, 1),
    }
    assert worker.deaths == TIMES, f"the failpoint killed {worker.deaths} workers, not {TIMES}"
    assert reached > TIMES, "the point was reached again after its kills (the page ran again)"
    assert final.failed == 0
    assert diff.clean, diff.examples
    assert not leftover, f"crash counts left after clean ends: {leftover}"
    if point == "after_token_response":
        assert scenario.figures["refreshes"] >= len(members) + TIMES  # the killed refreshes were never saved
