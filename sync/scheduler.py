"""Enqueue due streams, and re-enqueue any chain that stopped moving (lost message, dead worker)."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update

from models.tables import Connection, SyncState
from sync.runtime import Runtime

log = logging.getLogger("sxsync.scheduler")
TICK_SECONDS = 15.0
BATCH = 1000


def tick(rt: Runtime, now: datetime | None = None) -> tuple[int, int]:
    """One scheduler pass: (due streams started, stalled chains re-enqueued). Costs O(due)."""
    now = now or rt.clock()
    return _start_due(rt, now), reconcile(rt, now)


def _start_due(rt: Runtime, now: datetime) -> int:
    """Streams whose next poll time has come start a chain at their current version."""
    with rt.writes.begin() as session:
        due = session.execute(
            select(SyncState.id, SyncState.connection_id, SyncState.stream, SyncState.version)
            .join(Connection, Connection.id == SyncState.connection_id)
            .where(SyncState.next_run_at <= now, SyncState.running.is_(False), Connection.status == "active")
            .order_by(SyncState.next_run_at)
            .limit(BATCH)
        ).all()
        if due:
            session.execute(
                update(SyncState)
                .where(SyncState.id.in_([d.id for d in due]))
                .values(running=True, failed=False, attempts=0, last_progress_at=now, next_run_at=None)
            )
    for _, connection_id, stream, version in due:
        rt.send(connection_id, stream, version)
    return len(due)


def reconcile(rt: Runtime, now: datetime) -> int:
    """A running chain with no lease and no progress for a lease period lost its message: resend it."""
    quiet = now - timedelta(seconds=rt.settings.lease_seconds)
    with rt.sessions() as session:
        stalled = session.execute(
            select(SyncState.connection_id, SyncState.stream, SyncState.version)
            .join(Connection, Connection.id == SyncState.connection_id)
            .where(
                SyncState.running.is_(True),
                Connection.status == "active",
                or_(
                    SyncState.lease_until < quiet,
                    and_(
                        SyncState.lease_until.is_(None),
                        func.coalesce(SyncState.last_progress_at, datetime(1970, 1, 1)) < quiet,
                    ),
                ),
            )
            .limit(BATCH)
        ).all()
    for connection_id, stream, version in stalled:
        log.warning("re-enqueueing a stalled chain", extra={"connection": connection_id, "stream": stream})
        rt.send(connection_id, stream, version)
    return len(stalled)


def start_all(rt: Runtime, org_id: int | None = None) -> int:
    """`sxsync sync`: every active connection's streams (of one org) become due now."""
    now = rt.clock()
    with rt.writes.begin() as session:
        query = (
            select(SyncState.id)
            .join(Connection, Connection.id == SyncState.connection_id)
            .where(Connection.status == "active", SyncState.running.is_(False))
        )
        if org_id is not None:
            query = query.where(Connection.org_id == org_id)
        ids = list(session.execute(query).scalars())
        if ids:
            session.execute(update(SyncState).where(SyncState.id.in_(ids)).values(next_run_at=now))
    return _start_due(rt, now)


def run_forever(rt: Runtime, period: float = TICK_SECONDS) -> None:
    """The `sxsync scheduler` loop."""
    while True:
        started, resent = tick(rt)
        if started or resent:
            log.info("scheduler tick", extra={"started": started, "resent": resent})
        time.sleep(period)
