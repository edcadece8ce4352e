"""Stall detection: a stream that has work but whose checkpoint stopped advancing.

A running stream of an active connection is `stalled` when its checkpoint has not advanced over
`attempts` tries (each failed page counts one; a stored page resets the count), over `idle_pages`
pages stored in a row that read nothing and left the cursor where it was (a sync that loops while
reporting success), or for `minutes` (no progress, whatever the jobs report: waiting on a provider's
quota, a lost message the scheduler is not resending, a worker stuck inside one page). A failed stream is `failed`, not
stalled: it no longer has a job trying. The same rule is one SQL clause (for counts at scale) and
one Python function (for rows already loaded), so the dashboard, `/metrics` and `sxsync status` agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from models.tables import Connection, SyncState

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StallRule:
    """The thresholds: N attempts without a stored page, K idle pages in a row, or M minutes without progress."""

    attempts: int = 3
    minutes: float = 30.0
    idle_pages: int = 5


DEFAULT_RULE = StallRule()


@dataclass(frozen=True)
class Stall:
    """One stalled stream and why."""

    state_id: int
    org_id: int
    connection_id: int
    stream: str
    reason: str
    attempts: int
    last_progress_at: datetime | None


def stalled_clause(now: datetime, rule: StallRule = DEFAULT_RULE) -> ColumnElement[bool]:
    """SQL: the stream is stalled (join `Connection` on the state's connection for the status)."""
    quiet_since = now - timedelta(minutes=rule.minutes)
    return and_(
        Connection.status == "active",
        SyncState.running.is_(True),
        SyncState.failed.is_(False),
        or_(
            SyncState.attempts >= rule.attempts,
            SyncState.idle_pages >= rule.idle_pages,
            func.coalesce(SyncState.last_progress_at, EPOCH) < quiet_since,
        ),
    )


class StreamLike(Protocol):
    """What the rule reads of a stream (a SyncState, or a row of its columns)."""

    @property
    def running(self) -> bool: ...
    @property
    def failed(self) -> bool: ...
    @property
    def attempts(self) -> int: ...
    @property
    def idle_pages(self) -> int: ...
    @property
    def last_progress_at(self) -> datetime | None: ...


def stall_reason(
    state: StreamLike, connection_status: str, now: datetime, rule: StallRule = DEFAULT_RULE
) -> str | None:
    """Why a loaded stream is stalled, or None when it is not (the same rule as `stalled_clause`)."""
    if connection_status != "active" or not state.running or state.failed:
        return None
    if state.attempts >= rule.attempts:
        return f"{state.attempts} attempts without storing a page"
    if state.idle_pages >= rule.idle_pages:
        return f"looping: {state.idle_pages} pages stored without advancing the checkpoint"
    last = state.last_progress_at or EPOCH
    if last < now - timedelta(minutes=rule.minutes):
        minutes = int((now - last).total_seconds() // 60)
        return f"no page stored for {minutes} min" if state.last_progress_at else "never stored a page"
    return None


def find_stalled(session: Session, now: datetime, rule: StallRule = DEFAULT_RULE, *, limit: int = 1000) -> list[Stall]:
    """Stalled streams, longest-quiet first."""
    rows = session.execute(
        select(SyncState, Connection.status)
        .join(Connection, Connection.id == SyncState.connection_id)
        .where(stalled_clause(now, rule))
        .order_by(func.coalesce(SyncState.last_progress_at, EPOCH), SyncState.id)
        .limit(limit)
    ).all()
    found = []
    for state, status in rows:
        reason = stall_reason(state, status, now, rule) or "stalled"
        found.append(
            Stall(
                state_id=state.id,
                org_id=state.org_id,
                connection_id=state.connection_id,
                stream=state.stream,
                reason=reason,
                attempts=state.attempts,
                last_progress_at=state.last_progress_at,
            )
        )
    return found


def count_stalled(session: Session, now: datetime, rule: StallRule = DEFAULT_RULE) -> int:
    """How many streams are stalled (one COUNT)."""
    query = (
        select(func.count())
        .select_from(SyncState)
        .join(Connection, Connection.id == SyncState.connection_id)
        .where(stalled_clause(now, rule))
    )
    return int(session.execute(query).scalar_one())
