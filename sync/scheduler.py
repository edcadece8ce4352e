"""Enqueue due streams, and re-enqueue any chain that stopped moving (lost message, dead worker)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update

from models.rls import system_wide
from models.tables import Connection, SyncState
from sync.runtime import Runtime

log = logging.getLogger("sxsync.scheduler")
TICK_SECONDS = 15.0
BATCH = 1000


@system_wide
def tick(rt: Runtime, now: datetime | None = None) -> tuple[int, int]:
    """One scheduler pass: (due streams started, stalled chains re-enqueued). Costs O(due)."""
    now = now or rt.clock()
    return _start_due(rt, now), reconcile(rt, now)


def _start_due(rt: Runtime, now: datetime, connection_ids: Sequence[int] | None = None) -> int:
    """Streams whose next poll time has come (of these connections only, if given) start a chain."""
    query = (
        select(SyncState.id, SyncState.connection_id, SyncState.stream, SyncState.version)
        .join(Connection, Connection.id == SyncState.connection_id)
        .where(SyncState.next_run_at <= now, SyncState.running.is_(False), Connection.status == "active")
        .order_by(SyncState.next_run_at)
        .limit(BATCH)
        .with_for_update(of=SyncState, skip_locked=True)  # PostgreSQL: never wait on a row a page job holds
    )
    if connection_ids is not None:
        query = query.where(SyncState.connection_id.in_(connection_ids))
    with rt.writes.begin() as session:
        due = session.execute(query).all()
        if due:
            session.execute(
                update(SyncState)
                .where(SyncState.id.in_([d.id for d in due]))
                .values(running=True, failed=False, attempts=0, last_progress_at=now, next_run_at=None)
            )
    for _, connection_id, stream, version in due:
        rt.send(connection_id, stream, version)
    return len(due)


# correlated, so the planner walks running streams and checks each one's connection (an IN list made
# SQLite scan every connection first)
_active_connection = (
    select(Connection.id).where(Connection.id == SyncState.connection_id, Connection.status == "active").exists()
)


@system_wide
def reconcile(rt: Runtime, now: datetime) -> int:
    """A running chain with no live lease and no progress for a lease period lost its message: resend it.

    The resend counts as progress (and drops the dead lease), so a chain is resent once per lease
    period, not again on every tick while its new message waits behind a backlog.

    On PostgreSQL the rows are locked first, skipping those a page job holds (it is working on
    that chain right now), so the multi-row UPDATE waits for no one. When it waited, it deadlocked with page
    jobs (each holds its own row, and its org's lock while it stores a page), and the page that lost had to
    be fetched again.
    """
    quiet = now - timedelta(seconds=rt.settings.lease_seconds)
    stalled = and_(
        SyncState.running.is_(True),  # on ix_sync_states_running_lease: O(running streams), not O(connections)
        _active_connection,
        or_(
            SyncState.lease_until < quiet,
            and_(
                SyncState.lease_until.is_(None),
                func.coalesce(SyncState.last_progress_at, datetime(1970, 1, 1)) < quiet,
            ),
        ),
    )
    with rt.writes.begin() as session:
        ids = list(
            session.execute(
                select(SyncState.id).where(stalled).limit(BATCH).with_for_update(skip_locked=True)
            ).scalars()
        )
        resent = (
            session.execute(
                update(SyncState)
                .where(SyncState.id.in_(ids), stalled)  # still stalled (SQLite: a worker may have taken it meanwhile)
                .values(lease_owner=None, lease_until=None, last_progress_at=now)
                .returning(SyncState.connection_id, SyncState.stream, SyncState.version)
            ).all()
            if ids
            else []
        )
    for connection_id, stream, version in resent:
        log.warning("re-enqueueing a stalled chain", extra={"connection": connection_id, "stream": stream})
        rt.send(connection_id, stream, version)
    return len(resent)


@system_wide
def resend_running(rt: Runtime, now: datetime) -> int:
    """The broker lost its queues: every running chain of an active connection is sent again at once."""
    running = and_(SyncState.running.is_(True), _active_connection)
    with rt.writes.begin() as session:
        resent = session.execute(
            update(SyncState)
            .where(running)
            .values(lease_owner=None, lease_until=None, last_progress_at=now)
            .returning(SyncState.connection_id, SyncState.stream, SyncState.version)
        ).all()
    for connection_id, stream, version in resent:
        log.warning(
            "re-enqueueing a stalled chain",
            extra={"connection": connection_id, "stream": stream, "why": "the broker lost its queues"},
        )
        rt.send(connection_id, stream, version)
    return len(resent)


def start_connections(rt: Runtime, connection_ids: Sequence[int]) -> int:
    """Just-authorized connections start their due streams now: the rep's first data does not wait a tick."""
    return _start_due(rt, rt.clock(), connection_ids) if connection_ids else 0


@system_wide
def start_all(rt: Runtime, org_id: int | None = None) -> int:
    """`sxsync sync`: every active connection's streams (of one org) become due now."""
    now = rt.clock()
    with rt.writes.begin() as session:
        query = (
            select(SyncState.id)
            .join(Connection, Connection.id == SyncState.connection_id)
            .where(Connection.status == "active", SyncState.running.is_(False))
            .with_for_update(of=SyncState, skip_locked=True)  # PostgreSQL: a stream a job holds is not waited for
        )
        if org_id is not None:
            query = query.where(Connection.org_id == org_id)
        ids = list(session.execute(query).scalars())
        if ids:
            session.execute(update(SyncState).where(SyncState.id.in_(ids)).values(next_run_at=now))
    return _start_due(rt, now)
