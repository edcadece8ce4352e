"""R3: the broker's Redis killed and restarted, frozen, or emptied mid-sync: 0 lost, 0 doubled, the sync completes.

Each scenario runs a private `redis-server` (AOF, `appendfsync always`: the deployment's persistence) that
the test kills (SIGKILL, restart on the same AOF), freezes (SIGSTOP, SIGCONT after STOP_SECONDS) or
empties (FLUSHALL). A real worker process and a real `sxsync scheduler` process work through it; the
scheduler must outlive the outage. After FLUSHALL every queued page job is gone and only the store
knows which chains were running: the scheduler must re-enqueue each of them within two scheduler periods
(it notices the broker's marker key is gone on its next tick: sync/broker.py broker_was_emptied).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from models.tables import SyncState
from sync.inprocess import Progress
from sync.scheduler import start_all
from tests.faults.conftest import LEASE_SECONDS, LONG, MEMBERS, Scenario, seed, world
from tests.faults.harness import Keys, Supervisor, compare, natural_keys
from tests.faults.outages import Driver, Scheduler
from tests.faults.services import RedisServer
from web.stack import Stack, running_stack

pytestmark = pytest.mark.faults
SYNCED = MEMBERS if LONG else MEMBERS[:2]  # CI budget: two mailboxes are chains enough to fault
PAGE_SIZE = 10  # more pages per chain than R1's, so that a fault lands mid-chain
FAULT_AT = 3  # pages stored before the fault
KILLS = 3 if LONG else 1
OUTAGE_TIMEOUT = 6 * LEASE_SECONDS  # a killed redis-server stays down until the scheduler met it (or this long)
STOP_SECONDS = 30.0 if LONG else 6.0
PERIOD = float(LEASE_SECONDS)  # the scheduler's period


class Flush:
    """FLUSHALL with the worker stopped gracefully (its jobs done, its prefetched messages back in Redis):
    every running chain's next page job is lost; when does the scheduler's reconciler re-enqueue each one?"""

    def __init__(self, stack: Stack, worker: Supervisor, server: RedisServer) -> None:
        self.stack, self.worker, self.server = stack, worker, server
        self.at: datetime | None = None
        self.stalled: set[int] = set()  # connection ids

    def fire(self) -> None:
        proc = self.worker.proc
        assert proc is not None
        os.killpg(proc.pid, signal.SIGTERM)  # dramatiq's graceful shutdown: in-flight jobs finish and ack
        proc.wait(timeout=60)
        self.worker.stop()
        with self.stack.rt.sessions() as session:
            running = select(SyncState.connection_id).where(SyncState.running.is_(True))
            self.stalled = set(session.execute(running).scalars())
        self.server.flushall()
        self.at = self.stack.rt.clock()
        self.worker.start()

    def resent(self, scheduler: Scheduler) -> dict[int, datetime]:
        """Each stalled chain's first re-enqueueing after the flush (the scheduler logs it as it sends)."""
        first: dict[int, datetime] = {}
        for connection, when in scheduler.resent_at():
            if self.at is not None and when > self.at and connection in self.stalled:
                first.setdefault(connection, when)
        return first

    def lag_periods(self, scheduler: Scheduler) -> float:
        assert self.at is not None
        return max((at - self.at).total_seconds() for at in self.resent(scheduler).values()) / PERIOD


@pytest.mark.parametrize("fault", ["kill", "stop", "flushall"])
def test_a_redis_outage_loses_and_doubles_nothing(
    fault: str,
    tmp_path: Path,
    pg_url: str,
    reference: dict[tuple[str, ...], Keys],
    scenario: Scenario,
) -> None:
    scenario.name = {
        "kill": f"R3 redis-server SIGKILL + restart x{KILLS}",
        "stop": f"R3 redis-server SIGSTOP {STOP_SECONDS:.0f} s",
        "flushall": "R3 FLUSHALL (worker drained first)",
    }[fault]
    started = time.monotonic()
    with (
        RedisServer(tmp_path / "redis") as server,
        running_stack(
            data_dir=tmp_path / "run", world=world(), database_url=pg_url, broker_url=server.url(), workers=0,
            page_size=PAGE_SIZE, lease_seconds=LEASE_SECONDS,
        ) as stack,
    ):
        seed(stack, SYNCED)
        with (
            Supervisor(stack.rt.settings, tmp_path / "worker.log") as worker,
            Scheduler(stack, tmp_path / "scheduler.log", PERIOD) as scheduler,
        ):
            flush = Flush(stack, worker, server)
            step = _faults(fault, server, flush, scheduler)
            start_all(stack.rt)
            driver = Driver(worker, stack)
            final = driver.run(timeout=240 if LONG else 120, step=step)
            scheduler_alive, failed_ticks = scheduler.alive, scheduler.failed_ticks()
            resent = flush.resent(scheduler)
            lag = flush.lag_periods(scheduler) if resent else None
        stored = natural_keys(stack)
    diff = compare(reference[SYNCED], stored)
    scenario.figures |= {
        "pages": final.pages,
        "outage_looks": driver.outages,
        "worker_deaths": worker.deaths,
        "scheduler_failed_ticks": failed_ticks,
        "expected": diff.expected,
        "lost": diff.lost,
        "doubled": diff.doubled,
        "unexpected": diff.unexpected,
        "failed": final.failed,
    }
    if fault == "flushall":
        scenario.figures |= {
            "stalled": len(flush.stalled),
            "resent": len(resent),
            "reenqueue_periods": lag if lag is None else round(lag, 2),
        }
    scenario.figures["seconds"] = round(time.monotonic() - started, 1)
    assert scheduler_alive, "the scheduler died in the outage (tmp_path/scheduler.log)"
    assert final.failed == 0
    assert diff.clean, diff.examples
    if fault == "kill":
        assert failed_ticks >= 1, "the scheduler never met the dead broker: the scenario tested nothing"
    if fault == "flushall":
        assert flush.stalled, "no chain was running at the flush: the scenario tested nothing"
        assert set(resent) == flush.stalled
        # the first tick after the flush finds the broker's marker key gone and resends every running chain,
        # whatever the lease (without the marker the reconciler waits a lease of quiet: lease + period)
        assert lag is not None and lag < 2, f"re-enqueued after {lag} periods"


def _faults(fault: str, server: RedisServer, flush: Flush, scheduler: Scheduler) -> Callable[[Progress], None]:
    """The step that fires `fault` once FAULT_AT pages are stored (kills: again every FAULT_AT pages).

    A killed redis-server stays down until the scheduler tried to re-enqueue a chain the outage stalled
    (so the scheduler's tick meets the dead broker), then restarts on its AOF.
    """
    fired: list[int] = []

    def step(state: Progress) -> None:
        due = FAULT_AT * (len(fired) + 1)
        if state.pages < due or len(fired) >= (KILLS if fault == "kill" else 1):
            return
        fired.append(state.pages)
        if fault == "kill":
            resends = scheduler.resends()
            server.kill()
            deadline = time.monotonic() + OUTAGE_TIMEOUT
            while scheduler.resends() == resends and time.monotonic() < deadline:
                time.sleep(0.2)
            server.start()
        elif fault == "stop":
            server.pause()
            threading.Timer(STOP_SECONDS, server.resume).start()
        else:
            flush.fire()

    return step
