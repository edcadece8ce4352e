"""Driving a sync through outages of its store and broker: the real scheduler process and a tolerant drive loop.

`Supervisor.drive` (harness.py) fails on the first error its own store or broker calls meet; while
Redis or PostgreSQL is down those are expected. `Driver` keeps the worker alive, looks at progress,
lets the test fire its faults, and counts the looks that met an outage instead of failing on them.
The reconciling is left to a real `sxsync scheduler` process (what production runs), so the scenarios
also prove that the scheduler itself survives the outage.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

import redis
from sqlalchemy.exc import OperationalError

from sync.inprocess import Progress, progress
from tests.faults.harness import REPO, Supervisor, settings_env
from web.stack import Stack

TRANSIENT = (OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Scheduler:
    """`sxsync scheduler --period P` in a session of its own: due syncs and the store-driven reconciler."""

    def __init__(self, stack: Stack, log: Path, period: float) -> None:
        self.env = settings_env(stack.rt.settings)
        self.log, self.period = log, period
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Scheduler:
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("sxsync")), "scheduler", "--period", str(self.period)],
            cwd=REPO,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def resends(self) -> int:
        """How many stalled chains the scheduler re-enqueued so far (or tried to: its log says so first)."""
        return self.log.read_text(errors="replace").count("re-enqueueing a stalled chain")

    def resent_at(self) -> list[tuple[int, datetime]]:
        """(connection, when) of every chain the scheduler re-enqueued, from its JSON log lines."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if "re-enqueueing a stalled chain" in line and line.startswith("{"):
                record = json.loads(line)
                found.append((int(record["connection"]), datetime.fromisoformat(record["at"].replace("Z", "+00:00"))))
        return found

    def failed_ticks(self) -> int:
        """Ticks that met an outage (logged, and the scheduler carried on)."""
        return self.log.read_text(errors="replace").count("scheduler tick failed")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass
class Driver:
    """Keep the worker alive and watch the store until no chain runs, riding out store and broker outages."""

    worker: Supervisor
    stack: Stack
    outages: int = 0  # looks at the store (or fault steps) that met a transient error

    def run(self, *, timeout: float, step: Callable[[Progress], None] | None = None) -> Progress:
        """Until every chain finished (`step` sees each look first and may fire faults); fail after `timeout`."""
        started = time.monotonic()
        while True:
            self.worker.watch()
            try:
                state = progress(self.stack.rt)
                if step is not None:
                    step(state)
                if state.running == 0:
                    return state
            except TRANSIENT:
                self.outages += 1
            if time.monotonic() - started > timeout:
                why = f"not done after {timeout:.0f} s, {self.worker.deaths} worker deaths, {self.outages} outages"
                raise AssertionError(f"{why}\n{self.worker.hang(self.stack)}")
            time.sleep(0.1)
