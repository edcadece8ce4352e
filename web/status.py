"""The ops picture in one structure: connections, their streams, lag and failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from models.network import iso
from models.tables import Connection, Member, Org, SyncState
from sync.broker import setup_broker
from sync.runtime import Runtime
from sync.stalls import stall_reason
from web.ops_report import status_extras


def collect_status(rt: Runtime) -> dict[str, Any]:
    """Every connection's streams with cursor phase, lag, progress and last error."""
    now = rt.clock()
    streams = []
    with rt.sessions() as session:
        rows = session.execute(
            select(SyncState, Connection, Member.email, Org.slug)
            .join(Connection, Connection.id == SyncState.connection_id)
            .join(Member, Member.id == Connection.member_id)
            .join(Org, Org.id == Connection.org_id)
            .order_by(Org.slug, Member.email, Connection.source, SyncState.stream)
        ).all()
    for state, connection, email, slug in rows:
        streams.append(
            {
                "org": slug,
                "member": email,
                "connection": connection.id,
                "source": connection.source,
                "account": connection.account,
                "connection_status": connection.status,
                "stream": state.stream,
                "state": _state_word(state, connection, now),
                "lag_seconds": _lag(state.last_success_at, now),
                "last_success_at": iso(state.last_success_at) if state.last_success_at else None,
                "records": state.records_total,
                "pages": state.pages_total,
                "api_calls": state.api_calls_total,
                "attempts": state.attempts,
                "last_error": state.last_error,
            }
        )
    return {
        "at": iso(now),
        "streams": streams,
        "failed": sum(1 for s in streams if s["state"] in ("failed", "reauth_required")),
        "running": sum(1 for s in streams if s["state"] in ("backfill", "syncing", "stalled")),
    } | status_extras(rt, setup_broker(rt))


def _state_word(state: SyncState, connection: Connection, now: datetime) -> str:
    """One word for a stream: paused, reauth_required, failed, stalled, backfill, syncing or idle."""
    if connection.status != "active":
        return connection.status
    if state.failed:
        return "failed"
    if stall_reason(state, connection.status, now) is not None:
        return "stalled"
    if state.running:
        return "backfill" if state.in_full_pass else "syncing"
    return "idle"


def _lag(last_success: datetime | None, now: datetime) -> float | None:
    """Seconds since the stream last caught up."""
    return round((now - last_success).total_seconds(), 1) if last_success else None


def print_status(report: dict[str, Any]) -> None:
    """A rich table for the terminal."""
    table = Table(title=f"sxsync status at {report['at']}")
    for column in ("org", "member", "source", "stream", "state", "lag", "records", "api calls", "last error"):
        table.add_column(column)
    for s in report["streams"]:
        lag = "never" if s["lag_seconds"] is None else f"{s['lag_seconds']:.0f}s"
        table.add_row(
            s["org"],
            s["member"],
            s["source"],
            s["stream"],
            s["state"],
            lag,
            str(s["records"]),
            str(s["api_calls"]),
            (s["last_error"] or "")[:60],
        )
    Console().print(table)
    Console().print(f"{report['running']} running, {report['failed']} failed")
