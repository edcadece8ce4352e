"""The ops picture in one structure: connections, their streams, lag and failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from models.network import iso
from models.rls import system_wide
from sync.broker import setup_broker
from sync.runtime import Runtime
from web.ops_report import load_streams, status_extras, stream_backfill_percent, stream_word


@system_wide
def collect_status(rt: Runtime) -> dict[str, Any]:
    """Every connection's streams with cursor phase, lag, progress and last error (the dashboard's words)."""
    now = rt.clock()
    with rt.sessions() as session:
        rows = load_streams(session)
    rows.sort(key=lambda r: (r.org, r.member, r.source, r.stream))
    streams = []
    for row in rows:
        word, _ = stream_word(row, now)
        streams.append(
            {
                "org": row.org,
                "member": row.member,
                "connection": row.connection_id,
                "source": row.source,
                "account": row.account,
                "connection_status": row.connection_status,
                "stream": row.stream,
                "state": word,
                "lag_seconds": _lag(row.last_success_at, now),
                "last_success_at": iso(row.last_success_at) if row.last_success_at else None,
                "records": row.records_total,
                "pages": row.pages_total,
                "api_calls": row.api_calls_total,
                "attempts": row.attempts,
                "throttled": row.throttled_total,
                "backfill_percent": stream_backfill_percent(row),
                "last_error": row.last_error,
            }
        )
    return {
        "at": iso(now),
        "streams": streams,
        "failed": sum(1 for s in streams if s["state"] in ("failed", "reauth_required")),
        "running": sum(1 for s in streams if s["state"] in ("backfill", "syncing", "retrying", "stalled")),
    } | status_extras(rt, setup_broker(rt))


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
