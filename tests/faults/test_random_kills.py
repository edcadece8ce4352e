"""R1, random half: the worker's process group SIGKILLed at random moments of a backfill (5 kills; 20 in
long mode): the sync completes with 0 lost and 0 doubled, and the re-executions are reported.

Random kills mostly land mid-fetch or mid-commit; the deterministic failpoints (test_failpoints.py)
cover the narrow windows between commit and ack that random kills rarely hit.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path

import pytest

from sync.inprocess import progress
from sync.scheduler import reconcile, start_all
from tests.faults.conftest import LEASE_SECONDS, LONG, MEMBERS, Scenario, seed, world
from tests.faults.harness import Keys, Supervisor, compare, natural_keys
from web.stack import running_stack

pytestmark = pytest.mark.faults
KILLS = 20 if LONG else 5
PAGE_SIZE = 5  # many short pages: more moments for a kill to land inside a job, and a run long enough for all


def clean_requests(data_dir: Path, members: tuple[str, ...]) -> int:
    """The Gmail HTTP requests of the same backfill without faults (in-process, SQLite)."""
    with running_stack(data_dir=data_dir, world=world(), page_size=PAGE_SIZE) as clean:
        seed(clean, members)
        assert clean.sync(timeout=120).failed == 0
        return clean.sandbox.google.stats.http_requests


def test_random_sigkills_of_the_worker_lose_and_double_nothing(
    tmp_path: Path,
    pg_url: str,
    redis_url: str,
    reference: dict[tuple[str, ...], Keys],
    scenario: Scenario,
) -> None:
    scenario.name = f"R1 random SIGKILL x{KILLS}"
    members = MEMBERS[:2]
    chance = random.Random(20261125)
    started = time.monotonic()
    with running_stack(
        data_dir=tmp_path / "run", world=world(), database_url=pg_url, broker_url=redis_url, workers=0,
        page_size=PAGE_SIZE, lease_seconds=LEASE_SECONDS,
    ) as stack:
        seed(stack, members)
        with Supervisor(stack.rt.settings, tmp_path / "worker.log") as worker:
            start_all(stack.rt)
            kills = 0
            next_kill = time.monotonic() + chance.uniform(0.5, 3.0)
            while kills < KILLS and progress(stack.rt).running > 0:
                assert time.monotonic() - started < 300, f"only {kills} kills landed in 300 s"
                worker.watch()
                if time.monotonic() >= next_kill and worker.proc is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(worker.proc.pid, signal.SIGKILL)
                    kills += 1
                    next_kill = time.monotonic() + chance.uniform(0.5, 2.0)
                reconcile(stack.rt, stack.rt.clock())
                time.sleep(0.1)
            final = worker.drive(stack, timeout=240)
        stored = natural_keys(stack)
        requests = stack.sandbox.google.stats.http_requests
    diff = compare(reference[members], stored)
    clean = clean_requests(tmp_path / "clean", members)
    scenario.figures |= {
        "kills": kills,
        "pages": final.pages,
        "gmail_requests": requests,
        "re_executed_requests": requests - clean,
        "expected": diff.expected,
        "lost": diff.lost,
        "doubled": diff.doubled,
        "unexpected": diff.unexpected,
        "seconds": round(time.monotonic() - started, 1),
    }
    assert requests >= clean
    assert kills == KILLS, f"the sync finished after {kills} of {KILLS} kills"
    assert final.failed == 0
    assert diff.clean, diff.examples
