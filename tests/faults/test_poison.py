"""R7: a page job that kills its worker on every delivery is parked after 3 deaths, visibly; the rest completes.

The broker redelivers an unacked message forever, so the store counts the deliveries that never
ended (sync/pipeline.py's crash counter). Once ops fixed the cause, a retry completes the stream.

The worker runs two threads, so a kill also takes down whatever job runs beside the poison one; such a
bystander is counted once, then runs alone in its process as a suspect, clears its count and is never
parked (before the pipeline ran suspects alone, a bystander was parked in about one run in four).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.failpoints import hits
from sync.ops_actions import retry_now
from sync.pipeline import MAX_CRASHES, PARKED_ERROR
from sync.scheduler import start_all
from tests.faults.conftest import LEASE_SECONDS, MEMBERS, ORG, PAGE_SIZE, Scenario, seed, world
from tests.faults.harness import Keys, Supervisor, compare, gmail_connection, natural_keys, settings_env, states
from web.ops_report import collect_ops
from web.stack import running_stack

pytestmark = pytest.mark.faults


def test_a_page_that_kills_every_worker_is_parked_after_three_deliveries_and_retried_by_ops(
    tmp_path: Path,
    pg_url: str,
    redis_url: str,
    reference: dict[tuple[str, ...], Keys],
    scenario: Scenario,
) -> None:
    scenario.name = "R7 poison page (after_fetch=kill, every delivery)"
    started = time.monotonic()
    with running_stack(
        data_dir=tmp_path / "run", world=world(), database_url=pg_url, broker_url=redis_url, workers=0,
        page_size=PAGE_SIZE, lease_seconds=LEASE_SECONDS,
    ) as stack:
        seed(stack, MEMBERS)
        poison = gmail_connection(stack, MEMBERS[0])
        failpoint_dir = tmp_path / "failpoints"
        failpoint_dir.mkdir()
        with Supervisor(
            stack.rt.settings, tmp_path / "worker.log", failpoints=f"after_fetch=kill@{poison}",
            failpoint_dir=failpoint_dir, threads=2,
        ) as worker:
            start_all(stack.rt)
            parked = worker.drive(stack, timeout=150)
            scenario.figures |= {
                "kills": worker.deaths,
                "deliveries": hits(failpoint_dir, "after_fetch", poison),
            }
            by_connection = {s.connection_id: s for s in states(stack)}
            stuck = by_connection.pop(poison)
            scenario.figures |= {"crash_count": stuck.crash_count, "parked": stuck.failed and not stuck.running}
            assert (stuck.failed, stuck.running, stuck.last_error) == (True, False, PARKED_ERROR)
            assert (stuck.crash_count, stuck.crash_version) == (MAX_CRASHES, stuck.version)
            assert worker.deaths == MAX_CRASHES
            assert scenario.figures["deliveries"] == MAX_CRASHES, "the parking delivery must not fetch"
            assert stuck.pages_total == 0
            others = list(by_connection.values())
            scenario.figures["others_done"] = f"{sum(1 for s in others if s.last_success_at)}/{len(others)}"
            assert all(s.last_success_at and not s.failed and not s.running and not s.crash_count for s in others)
            assert parked.failed == 1

            # ops see it: `sxsync status --json` and the dashboard's report
            report = subprocess.run(
                [str(Path(sys.executable).with_name("sxsync")), "status", "--json"],
                env=settings_env(stack.rt.settings), cwd=tmp_path, capture_output=True, text=True, timeout=60,
                check=True,
            )
            status = json.loads(report.stdout)
            assert status["failed"] == 1
            shown = [s for s in status["streams"] if s["connection"] == poison]
            assert [(s["state"], s["last_error"]) for s in shown] == [("failed", PARKED_ERROR)]
            view = next(v for v in collect_ops(stack.rt, stack.broker).connections if v.id == poison)
            assert (view.status, view.last_error) == ("failed", PARKED_ERROR)

            # the cause is fixed (no failpoint) and ops retry: the stream completes, the store is whole
            worker.restart("")
            retry_now(stack.rt, poison, actor="ops@acme.test", org=ORG)
            final = worker.drive(stack, timeout=90)
        retried = next(s for s in states(stack) if s.connection_id == poison)
        stored = natural_keys(stack)
    diff = compare(reference[MEMBERS], stored)
    scenario.figures |= {
        "lost": diff.lost,
        "doubled": diff.doubled,
        "unexpected": diff.unexpected,
        "failed_after_retry": final.failed,
        "seconds": round(time.monotonic() - started, 1),
    }
    assert final.failed == 0
    assert retried.last_success_at and not retried.failed and retried.last_error is None
    assert (retried.crash_count, retried.crash_version) == (0, None)
    assert diff.clean, diff.examples
