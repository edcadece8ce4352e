"""Run page jobs inside this process (no broker URL), and wait for sync chains to finish."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dramatiq
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from models.rls import system_wide
from models.tables import Connection, SyncState
from sync.runtime import Runtime
from sync.scheduler import reconcile

log = logging.getLogger("sxsync.wait")


@contextmanager
def worker_threads(broker: dramatiq.Broker, threads: int = 4) -> Iterator[dramatiq.Worker]:
    """A Dramatiq worker on `broker` in this process, for as long as the block runs."""
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@dataclass(frozen=True)
class Progress:
    """How far the watched chains are."""

    running: int
    failed: int
    pages: int
    records: int


def progress(rt: Runtime, org_id: int | None = None) -> Progress:
    """One look at the store's sync states (of one org)."""
    with rt.sessions() as session:
        query = select(
            func.count().filter(SyncState.running.is_(True) & (Connection.status == "active")),
            func.count().filter(SyncState.failed.is_(True) | (Connection.status == "reauth_required")),
            func.coalesce(func.sum(SyncState.pages_total), 0),
            func.coalesce(func.sum(SyncState.records_total), 0),
        ).join(Connection, Connection.id == SyncState.connection_id)
        if org_id is not None:
            query = query.where(Connection.org_id == org_id)
        running, failed, pages, records = session.execute(query).one()
    return Progress(int(running), int(failed), int(pages), int(records))


@system_wide
def wait_for_chains(
    rt: Runtime,
    org_id: int | None = None,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    poll: float = 0.2,
    reconcile_every: float = 15.0,
    timeout: float | None = None,
) -> Progress:
    """Block until no watched chain is running; keep stalled chains moving meanwhile."""
    started = last_reconcile = time.monotonic()
    while True:
        state = progress(rt, org_id)
        if on_progress:
            on_progress(state)
        if state.running == 0:
            return state
        now = time.monotonic()
        if timeout is not None and now - started > timeout:
            raise TimeoutError(f"{state.running} sync chains still running after {timeout:.0f} s")
        if now - last_reconcile >= reconcile_every:
            try:
                reconcile(rt, rt.clock())
            except OperationalError:  # SQLite's write lock is busy with page commits: try again next round
                log.info("reconcile deferred: the store is busy")
            last_reconcile = now
        time.sleep(poll)
