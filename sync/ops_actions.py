"""What ops may do to a connection: pause, resume, force a resync, retry now, requeue its dead letters.

Every action finds the connection within the org it was asked for (an unknown id and another org's
id are the same `NotFound`, so no existence oracle), changes the store in one transaction with an
audit event, and only then enqueues. Each keeps DESIGN.md's idempotency rules: a resync bumps the
version (any message still in flight becomes stale) and a new generation, so the full pass sweeps
what it no longer sees; a retry re-sends the current version; a requeued dead letter is a fresh copy
of the same page job, which does nothing if its page was done meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.rls import system_wide
from models.tables import Connection, Org, SyncState
from privacy.audit import record
from sync.dead_letters import DeadLetter, list_dead_letters
from sync.dead_letters import requeue_dead_letters as broker_requeue
from sync.pipeline import new_pass_values
from sync.runtime import Runtime

log = logging.getLogger("sxsync.ops")
SYNC_QUEUE = "sync"  # sync.actors.SYNC_QUEUE (not imported: that module binds actors to a broker)


class NotFound(LookupError):
    """No such connection, stream or dead letter in that org (another org's is not found either)."""


class NotAllowed(ValueError):
    """The action does not apply in the connection's state (e.g. resuming a revoked connection)."""


@dataclass(frozen=True)
class ActionResult:
    """What an action did, for the page's flash line, the CLI and tests."""

    action: str
    connection_id: int
    org: str
    streams: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def message(self) -> str:
        """One line for humans."""
        what = {
            "paused": "paused",
            "resumed": "resumed",
            "resync": "full resync started",
            "retry": "retry enqueued",
            "requeued": f"{self.detail.get('requeued', 0)} dead letter(s) requeued",
        }.get(self.action, self.action)
        streams = f" ({', '.join(self.streams)})" if self.streams else ""
        return f"connection {self.connection_id}: {what}{streams}"


Notify = Callable[[str, Connection, str], None]  # (event, connection, org slug): webhooks


def _connection(session: Session, connection_id: int, org: str | None) -> tuple[Connection, Org]:
    """The connection, within `org` when given; NotFound otherwise."""
    query = select(Connection, Org).join(Org, Org.id == Connection.org_id).where(Connection.id == connection_id)
    if org is not None:
        query = query.where(Org.slug == org)
    row = session.execute(query.with_for_update(of=Connection)).first()
    if row is None:
        raise NotFound(f"no connection {connection_id}" + (f" in org {org!r}" if org is not None else ""))
    return row[0], row[1]


def _streams(session: Session, connection_id: int, stream: str | None) -> list[SyncState]:
    """The connection's sync states (one stream, or all); an unknown stream is NotFound."""
    query = select(SyncState).where(SyncState.connection_id == connection_id).order_by(SyncState.stream)
    if stream is not None:
        query = query.where(SyncState.stream == stream)
    states = list(session.execute(query).scalars())
    if stream is not None and not states:
        raise NotFound(f"connection {connection_id} has no stream {stream!r}")
    return states


@system_wide
def pause_connection(
    rt: Runtime, connection_id: int, *, actor: str, org: str | None = None, notify: Notify | None = None
) -> ActionResult:
    """Stop syncing a connection: its chains end at their next job; nothing is deleted."""
    with rt.writes.begin() as session:
        connection, org_row = _connection(session, connection_id, org)
        if connection.status == "revoked":
            raise NotAllowed(f"connection {connection_id} is revoked; it cannot be paused")
        before = connection.status
        connection.status = "paused"
        record(
            session,
            org_id=connection.org_id,
            actor=actor,
            action="ops.connection.paused",
            target=f"connection:{connection_id}",
            previous=before,
        )
    if notify is not None and before != "paused":
        notify("connection.paused", connection, org_row.slug)
    return ActionResult("paused", connection_id, org_row.slug)


@system_wide
def resume_connection(
    rt: Runtime, connection_id: int, *, actor: str, org: str | None = None, notify: Notify | None = None
) -> ActionResult:
    """Sync a paused connection again: every stream that is not running starts now."""
    with rt.writes.begin() as session:
        connection, org_row = _connection(session, connection_id, org)
        if connection.status not in ("paused", "active"):
            raise NotAllowed(
                f"connection {connection_id} is {connection.status}; only a paused connection resumes"
                + (" (the rep must reconnect)" if connection.status == "reauth_required" else "")
            )
        before = connection.status
        connection.status = "active"
        started = _start(session, rt, _streams(session, connection_id, None), only_idle=True)
        record(
            session,
            org_id=connection.org_id,
            actor=actor,
            action="ops.connection.resumed",
            target=f"connection:{connection_id}",
            previous=before,
            streams=[s for s, _ in started],
        )
    _send(rt, connection_id, started)
    if notify is not None and before != "active":
        notify("connection.recovered", connection, org_row.slug)
    return ActionResult("resumed", connection_id, org_row.slug, [s for s, _ in started])


@system_wide
def resync_stream(
    rt: Runtime, connection_id: int, stream: str | None = None, *, actor: str, org: str | None = None
) -> ActionResult:
    """Forget the cursor and start a full pass (new generation, version + 1); all streams when none is named."""
    with rt.writes.begin() as session:
        connection, org_row = _connection(session, connection_id, org)
        states = _streams(session, connection_id, stream)
        active = connection.status == "active"
        now = rt.clock()
        sends = []
        for state in states:
            version = state.version + 1
            session.execute(
                update(SyncState)
                .where(SyncState.id == state.id)
                .values(
                    version=version,
                    **new_pass_values(),
                    attempts=0,
                    failed=False,
                    last_error=None,
                    crash_count=0,
                    crash_version=None,
                    lease_owner=None,
                    lease_until=None,
                    running=active,
                    next_run_at=None if active else now,
                    last_progress_at=now,
                    enqueued_version=version if active else SyncState.enqueued_version,
                )
            )
            if active:
                sends.append((state.stream, version))
        record(
            session,
            org_id=connection.org_id,
            actor=actor,
            action="ops.stream.resync",
            target=f"connection:{connection_id}",
            streams=[s.stream for s in states],
            enqueued=active,
        )
    _send(rt, connection_id, sends)
    return ActionResult("resync", connection_id, org_row.slug, [s.stream for s in states], {"enqueued": active})


@system_wide
def retry_now(
    rt: Runtime, connection_id: int, stream: str | None = None, *, actor: str, org: str | None = None
) -> ActionResult:
    """Clear the failure and crash counts and send the current page again now (failed, parked, stalled or
    waiting streams)."""
    with rt.writes.begin() as session:
        connection, org_row = _connection(session, connection_id, org)
        if connection.status != "active":
            raise NotAllowed(f"connection {connection_id} is {connection.status}; resume it first")
        states = _streams(session, connection_id, stream)
        if stream is None:  # all streams: only those with work or trouble, not the idle ones
            states = [s for s in states if s.running or s.failed or s.attempts]
        started = _start(session, rt, states, only_idle=False)
        record(
            session,
            org_id=connection.org_id,
            actor=actor,
            action="ops.stream.retry",
            target=f"connection:{connection_id}",
            streams=[s for s, _ in started],
        )
    _send(rt, connection_id, started)
    return ActionResult("retry", connection_id, org_row.slug, [s for s, _ in started])


@system_wide
def dead_letters_of(
    rt: Runtime,
    connection_id: int,
    *,
    org: str | None = None,
    broker: dramatiq.Broker | None = None,
    limit: int = 100,
) -> list[DeadLetter]:
    """The connection's dead-lettered page jobs (NotFound for an unknown or other org's connection)."""
    with rt.sessions() as session:
        _connection_readonly(session, connection_id, org)
    return list_dead_letters(_broker(broker), SYNC_QUEUE, connection_id=connection_id, limit=limit)


@system_wide
def requeue_dead_letters(
    rt: Runtime,
    connection_id: int,
    *,
    actor: str,
    org: str | None = None,
    handles: Iterable[str] | None = None,
    broker: dramatiq.Broker | None = None,
) -> ActionResult:
    """Put one (by handle) or all dead letters of a connection back on the queue, its streams running again.

    The streams are marked running with a clean failure count first, so the chain is watched (and
    reconciled if the message is lost) from the moment it is back on the queue.
    """
    wanted = list(handles) if handles is not None else None
    with rt.sessions() as session:
        _connection_readonly(session, connection_id, org)
    chosen = _broker(broker)
    letters = list_dead_letters(chosen, SYNC_QUEUE, connection_id=connection_id, limit=10_000)
    if wanted is not None:
        missing = set(wanted) - {d.id for d in letters}
        if missing:
            raise NotFound(f"no dead letter {sorted(missing)[0]!r} of connection {connection_id}")
    streams = sorted({d.stream for d in letters if d.stream and (wanted is None or d.id in wanted)})
    with rt.writes.begin() as session:
        connection, org_row = _connection(session, connection_id, org)
        if streams and connection.status == "active":
            session.execute(
                update(SyncState)
                .where(SyncState.connection_id == connection_id, SyncState.stream.in_(streams))
                .values(
                    running=True,
                    failed=False,
                    attempts=0,
                    crash_count=0,
                    crash_version=None,
                    last_progress_at=rt.clock(),
                    next_run_at=None,
                )
            )
    done = broker_requeue(chosen, SYNC_QUEUE, connection_id=connection_id, handles=wanted)
    with rt.writes.begin() as session:
        record(
            session,
            org_id=connection.org_id,
            actor=actor,
            action="ops.dead_letters.requeued",
            target=f"connection:{connection_id}",
            requeued=len(done),
            messages=[d.id for d in done][:50],
            streams=streams,
        )
    log.info("dead letters requeued", extra={"connection": connection_id, "requeued": len(done)})
    return ActionResult("requeued", connection_id, org_row.slug, streams, {"requeued": len(done)})


def _connection_readonly(session: Session, connection_id: int, org: str | None) -> Connection:
    """The connection within `org`, without a lock."""
    query = select(Connection).join(Org, Org.id == Connection.org_id).where(Connection.id == connection_id)
    if org is not None:
        query = query.where(Org.slug == org)
    found = session.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no connection {connection_id}" + (f" in org {org!r}" if org is not None else ""))
    return found


def _broker(broker: dramatiq.Broker | None) -> dramatiq.Broker | None:
    """The given broker, else the process's (never one invented by `dramatiq.get_broker()`)."""
    return broker if broker is not None else dramatiq.broker.global_broker


def _start(session: Session, rt: Runtime, states: list[SyncState], *, only_idle: bool) -> list[tuple[str, int]]:
    """Mark streams running at their current version (the caller sends after commit); which were started."""
    now = rt.clock()
    started = []
    for state in states:
        if only_idle and state.running:
            continue
        session.execute(
            update(SyncState)
            .where(SyncState.id == state.id)
            .values(
                running=True,
                failed=False,
                attempts=0,
                crash_count=0,  # ops says try again: a parked (poison) page gets MAX_CRASHES new chances
                crash_version=None,
                lease_owner=None,
                lease_until=None,
                next_run_at=None,
                last_progress_at=now,
                enqueued_version=state.version,
            )
        )
        started.append((state.stream, state.version))
    return started


def _send(rt: Runtime, connection_id: int, pages: list[tuple[str, int]]) -> None:
    """Enqueue each page job (after the commit that made it due)."""
    for stream, version in pages:
        rt.send(connection_id, stream, version)
