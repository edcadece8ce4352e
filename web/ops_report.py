"""The ops picture in one structure: queues, providers, connections, stalls, conflicts, dead letters.

The dashboard renders it, `sxsync status --json` can include it (`status_extras`), and `/metrics`
shares its rules (stall, status words). It stays cheap at scale: one column-only query over the sync
states (no ORM objects, no cursors), aggregation in Python, O(1) broker calls per queue, and only
the worst `limit` connections are kept for display.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import dramatiq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.network import iso
from models.rls import system_wide
from models.tables import Connection, IdentityConflict, Member, Org, SyncState
from sync.dead_letters import DeadLetter, list_dead_letters
from sync.logs import redact
from sync.ops_actions import SYNC_QUEUE
from sync.runtime import Runtime
from sync.stalls import DEFAULT_RULE, StallRule, stall_reason
from web.queues import QueueFigures, current_broker, queue_figures

# Worst first: the order the dashboard lists connections in, and which stream speaks for one.
SEVERITY = {
    "reauth_required": 0,
    "failed": 1,
    "stalled": 2,
    "retrying": 3,
    "paused": 4,
    "revoked": 5,
    "backfill": 6,
    "syncing": 7,
    "idle": 8,
}
HEALTHY = frozenset({"backfill", "syncing", "idle"})
_PAYLOAD = re.compile(r"[{\[<]")  # the start of a JSON/XML/HTML body quoted into an error
ERROR_CHARS = 160


def redact_error(text: str | None) -> str | None:
    """A last error fit for a page: tokens masked, any quoted payload cut, one short line."""
    if not text:
        return None
    clean = redact(" ".join(text.split()))
    cut = _PAYLOAD.search(clean)
    if cut is not None:
        clean = clean[: cut.start()].rstrip(" :") + " […]"
    return clean if len(clean) <= ERROR_CHARS else clean[: ERROR_CHARS - 1] + "…"


@dataclass(slots=True)
class _Row:
    """One stream as loaded (columns only): enough for words, stalls, lag and totals."""

    connection_id: int
    stream: str
    running: bool
    failed: bool
    attempts: int
    idle_pages: int
    in_full_pass: bool
    last_success_at: datetime | None
    last_progress_at: datetime | None
    last_error: str | None
    records_total: int
    api_calls_total: int
    pages_total: int
    throttled_total: int
    backfill_progress: float | None
    connection_status: str
    provider: str
    source: str
    account: str
    connection_created_at: datetime
    member: str
    org: str


_COLUMNS = (
    SyncState.connection_id,
    SyncState.stream,
    SyncState.running,
    SyncState.failed,
    SyncState.attempts,
    SyncState.idle_pages,
    SyncState.in_full_pass,
    SyncState.last_success_at,
    SyncState.last_progress_at,
    SyncState.last_error,
    SyncState.records_total,
    SyncState.api_calls_total,
    SyncState.pages_total,
    SyncState.throttled_total,
    SyncState.backfill_progress,
    Connection.status.label("connection_status"),
    Connection.provider,
    Connection.source,
    Connection.account,
    Connection.created_at.label("connection_created_at"),
    Member.email.label("member"),
    Org.slug.label("org"),
)


def load_streams(session: Session, org: str | None = None) -> list[_Row]:
    """Every stream with its connection, member and org (columns only)."""
    query = (
        select(*_COLUMNS)
        .join(Connection, Connection.id == SyncState.connection_id)
        .join(Member, Member.id == Connection.member_id)
        .join(Org, Org.id == Connection.org_id)
    )
    if org is not None:
        query = query.where(Org.slug == org)
    return [_Row(*cast(tuple[Any, ...], row)) for row in session.connection().execute(query)]


def stream_word(row: _Row, now: datetime, rule: StallRule = DEFAULT_RULE) -> tuple[str, str | None]:
    """One word for a stream (and the stall reason when stalled)."""
    if row.connection_status != "active":
        return row.connection_status, None
    if row.failed:
        return "failed", None
    reason = stall_reason(row, row.connection_status, now, rule)
    if reason is not None:
        return "stalled", reason
    if row.running and row.attempts:
        return "retrying", None
    if row.running:
        return ("backfill" if row.in_full_pass else "syncing"), None
    return "idle", None


def stream_backfill_percent(row: _Row) -> int | None:
    """How far the stream's full pass is, as its connector estimates it (None when it cannot tell)."""
    if not row.in_full_pass:
        return 100
    if row.backfill_progress is None:
        return None
    return min(99, int(100 * row.backfill_progress))


def connection_backfill_percent(streams: list[StreamView]) -> int | None:
    """The mean over the connection's streams; unknown while any stream in a full pass has no count."""
    known = [st.backfill_percent for st in streams]
    if any(p is None for p in known) or not known:
        return None
    return sum(p for p in known if p is not None) // len(known)


@dataclass(slots=True)
class StreamView:
    """One stream of a connection as shown (times stay datetimes until serialized)."""

    stream: str
    state: str
    stall_reason: str | None
    attempts: int
    records: int
    pages: int
    last_success_at: datetime | None
    in_full_pass: bool
    last_error: str | None
    throttled: int = 0
    backfill_percent: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "stream": self.stream,
            "state": self.state,
            "stall_reason": self.stall_reason,
            "attempts": self.attempts,
            "records": self.records,
            "pages": self.pages,
            "last_success_at": iso(self.last_success_at) if self.last_success_at else None,
            "in_full_pass": self.in_full_pass,
            "last_error": self.last_error,
            "throttled": self.throttled,
            "backfill_percent": self.backfill_percent,
        }


@dataclass
class ConnectionView:
    """One connection as the dashboard shows it (its worst stream speaks for it)."""

    id: int
    org: str
    member: str
    provider: str
    source: str
    account: str
    status: str
    connection_status: str
    last_success_at: datetime | None
    lag_seconds: float | None
    records: int = 0
    api_calls: int = 0
    pages: int = 0
    retries: int = 0
    throttled: int = 0
    backfill_percent: int | None = None
    last_error: str | None = None
    stall_reason: str | None = None
    dead_letters: int = 0
    streams: list[StreamView] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "id": self.id,
            "org": self.org,
            "member": self.member,
            "provider": self.provider,
            "source": self.source,
            "account": self.account,
            "status": self.status,
            "connection_status": self.connection_status,
            "last_success_at": iso(self.last_success_at) if self.last_success_at else None,
            "lag_seconds": self.lag_seconds,
            "records": self.records,
            "api_calls": self.api_calls,
            "pages": self.pages,
            "retries": self.retries,
            "throttled": self.throttled,
            "backfill_percent": self.backfill_percent,
            "last_error": self.last_error,
            "stall_reason": self.stall_reason,
            "dead_letters": self.dead_letters,
            "streams": [st.as_dict() for st in self.streams],
        }


def connection_views(rows: list[_Row], now: datetime, rule: StallRule = DEFAULT_RULE) -> list[ConnectionView]:
    """Streams folded into connections, worst first, then by lag.

    A connection is as fresh as its stalest stream: its last success is the oldest of its streams'
    (none while any stream never succeeded, the lag then counting from when it was connected).
    """
    views: dict[int, ConnectionView] = {}
    worst: dict[int, int] = {}
    successes: dict[int, list[datetime | None]] = {}
    created: dict[int, datetime] = {}
    for row in rows:
        word, reason = stream_word(row, now, rule)
        severity = SEVERITY.get(word, len(SEVERITY))
        error = redact_error(row.last_error)
        view = views.get(row.connection_id)
        if view is None:
            view = views[row.connection_id] = ConnectionView(
                id=row.connection_id,
                org=row.org,
                member=row.member,
                provider=row.provider,
                source=row.source,
                account=row.account,
                status=word,
                connection_status=row.connection_status,
                last_success_at=None,
                lag_seconds=None,
                stall_reason=reason,
                last_error=error,
            )
            worst[view.id] = severity
            created[view.id] = row.connection_created_at
        elif severity < worst[view.id]:
            worst[view.id] = severity
            view.status, view.stall_reason = word, reason
            view.last_error = error or view.last_error
        elif error and not view.last_error:
            view.last_error = error
        successes.setdefault(view.id, []).append(row.last_success_at)
        view.records += int(row.records_total or 0)
        view.api_calls += int(row.api_calls_total or 0)
        view.pages += int(row.pages_total or 0)
        view.retries += int(row.attempts or 0)
        view.throttled += int(row.throttled_total or 0)
        view.streams.append(
            StreamView(
                row.stream,
                word,
                reason,
                int(row.attempts or 0),
                int(row.records_total or 0),
                int(row.pages_total or 0),
                row.last_success_at,
                bool(row.in_full_pass),
                error,
                int(row.throttled_total or 0),
                stream_backfill_percent(row),
            )
        )
    for view in views.values():
        seen = successes[view.id]
        view.last_success_at = None if any(s is None for s in seen) else min(s for s in seen if s is not None)
        since = view.last_success_at or created[view.id]
        view.lag_seconds = round(max(0.0, (now - since).total_seconds()), 1)
        view.backfill_percent = connection_backfill_percent(view.streams)
    return sorted(views.values(), key=lambda v: (SEVERITY.get(v.status, len(SEVERITY)), -(v.lag_seconds or 0.0), v.id))


def provider_summary(views: list[ConnectionView]) -> list[dict[str, Any]]:
    """Per provider: connections by status word, worst lag, records and API calls."""
    out: dict[str, dict[str, Any]] = {}
    for view in views:
        entry = out.setdefault(
            view.provider,
            {
                "provider": view.provider,
                "connections": 0,
                "by_status": {},
                "max_lag_seconds": None,
                "records": 0,
                "api_calls": 0,
                "last_success_at": None,
            },
        )
        entry["connections"] += 1
        entry["by_status"][view.status] = entry["by_status"].get(view.status, 0) + 1
        entry["records"] += view.records
        entry["api_calls"] += view.api_calls
        if view.connection_status == "active" and view.lag_seconds is not None:
            entry["max_lag_seconds"] = max(entry["max_lag_seconds"] or 0.0, view.lag_seconds)
        if view.last_success_at is not None and (
            entry["last_success_at"] is None or view.last_success_at > entry["last_success_at"]
        ):
            entry["last_success_at"] = view.last_success_at
    for entry in out.values():
        entry["healthy"] = sum(n for word, n in entry["by_status"].items() if word in HEALTHY)
        entry["last_success_at"] = iso(entry["last_success_at"]) if entry["last_success_at"] else None
    return sorted(out.values(), key=lambda e: str(e["provider"]))


def conflicts(session: Session, limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
    """Identity conflicts (a key shared by too many records: a shared inbox), newest first."""
    total = int(session.execute(select(func.count()).select_from(IdentityConflict)).scalar_one())
    rows = session.execute(
        select(IdentityConflict, Org.slug)
        .join(Org, Org.id == IdentityConflict.org_id)
        .order_by(IdentityConflict.detected_at.desc(), IdentityConflict.id.desc())
        .limit(limit)
    ).all()
    return total, [
        {"org": slug, "key": c.key, "records": c.records, "detected_at": iso(c.detected_at)} for c, slug in rows
    ]


@dataclass
class OpsReport:
    """Everything the dashboard shows, computed once per request."""

    at: datetime
    queues: list[QueueFigures]
    providers: list[dict[str, Any]]
    connections: list[ConnectionView]  # the worst `limit`
    total_connections: int
    stalled: list[dict[str, Any]]
    conflict_count: int
    conflicts: list[dict[str, Any]]
    dead_letters: list[DeadLetter]
    totals: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (what `sxsync status --json` and tests read)."""
        return {
            "at": iso(self.at),
            "queues": [q.as_dict() for q in self.queues],
            "providers": self.providers,
            "connections": [c.as_dict() for c in self.connections],
            "total_connections": self.total_connections,
            "stalled": self.stalled,
            "conflict_count": self.conflict_count,
            "conflicts": self.conflicts,
            "dead_letters": [d.as_dict() for d in self.dead_letters],
            "totals": self.totals,
        }


@system_wide
def collect_ops(
    rt: Runtime,
    broker: dramatiq.Broker | None = None,
    *,
    now: datetime | None = None,
    org: str | None = None,
    status: str | None = None,
    limit: int = 200,
    rule: StallRule = DEFAULT_RULE,
) -> OpsReport:
    """The whole picture (of one org, of one status word), worst connections first."""
    now = now or rt.clock()
    chosen = broker if broker is not None else current_broker()
    with rt.sessions() as session:
        rows = load_streams(session, org)
        conflict_count, conflict_rows = conflicts(session)
    views = connection_views(rows, now, rule)
    figures = queue_figures(chosen)
    dead = list_dead_letters(chosen, SYNC_QUEUE, limit=200) if figures and any(q.dead for q in figures) else []
    per_connection: dict[int, int] = {}
    for letter in dead:
        if letter.connection_id is not None:
            per_connection[letter.connection_id] = per_connection.get(letter.connection_id, 0) + 1
    for view in views:
        view.dead_letters = per_connection.get(view.id, 0)
    stalled = [
        {"connection": v.id, "org": v.org, "stream": st.stream, "reason": st.stall_reason, "source": v.source}
        for v in views
        for st in v.streams
        if st.state == "stalled"
    ]
    totals = {
        "records": sum(v.records for v in views),
        "pages": sum(v.pages for v in views),
        "api_calls": sum(v.api_calls for v in views),
        "failing_streams": sum(1 for r in rows if r.failed or (r.running and r.attempts > 0)),
        "stalled_streams": len(stalled),
        "dead_letters": sum(q.dead for q in figures),
    }
    shown = [v for v in views if status is None or v.status == status]
    return OpsReport(
        at=now,
        queues=figures,
        providers=provider_summary(views),
        connections=shown[:limit],
        total_connections=len(shown),
        stalled=stalled,
        conflict_count=conflict_count,
        conflicts=conflict_rows,
        dead_letters=dead[:50],
        totals=totals,
    )


@system_wide
def status_extras(rt: Runtime, broker: dramatiq.Broker | None = None) -> dict[str, Any]:
    """For `sxsync status --json`: queues, stalled streams and identity conflicts (keys `queues`, `stalled`, …)."""
    report = collect_ops(rt, broker, limit=0)
    return {
        "queues": [q.as_dict() for q in report.queues],
        "stalled": report.stalled,
        "conflicts": report.conflicts,
        "conflict_count": report.conflict_count,
        "dead_letters": [d.as_dict() for d in report.dead_letters],
    }
