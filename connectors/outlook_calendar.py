"""Outlook calendar as a source: calendarView delta over a fixed window (stream `events`), Calendars.Read.

The window (backfill days back, FUTURE_DAYS ahead) is fixed for a delta round and kept in Graph's
tokens; once `renew_after` passes, the next page starts a fresh full pass with a window around the
new date (Graph cannot slide a round's window). Occurrences are keyed by their series master's
iCalUId, fetched with $batch GETs of /me/events/{id} (20 per call) for the masters a page mentions.

Cursor: connectors.graph_delta's, plus "renew_after" (ISO UTC) when a round has begun.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from connectors.base import (
    JSON,
    ConnectorError,
    Deletion,
    FetchContext,
    Observation,
    Page,
    RateLimited,
    Rejection,
)
from connectors.graph_delta import fetch_delta
from connectors.graph_http import BATCH_LIMIT, GraphClient, me_address, open_graph, read_error
from connectors.outlook_calendar_mapping import SOURCE, map_event

name: str = SOURCE
provider: str = "microsoft"
streams: tuple[str, ...] = ("events",)
scopes: tuple[str, ...] = ("Calendars.Read", "User.Read")
FUTURE_DAYS = 180
RENEW_DAYS = 30
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def _now(ctx: FetchContext) -> datetime:
    return ctx.now if ctx.now.tzinfo is not None else ctx.now.replace(tzinfo=UTC)


def _start(ctx: FetchContext) -> tuple[str, dict[str, str]]:
    now = _now(ctx)
    window = {
        "startDateTime": (now - timedelta(days=ctx.backfill_days)).strftime(_STAMP),
        "endDateTime": (now + timedelta(days=FUTURE_DAYS)).strftime(_STAMP),
    }
    return "me/calendarView/delta", window


def series_masters(client: GraphClient, ids: list[str]) -> dict[str, str]:
    """{series master id: its iCalUId} by $batch (20 per call); a master that cannot be read is left out."""
    found: dict[str, str] = {}
    for first in range(0, len(ids), BATCH_LIMIT):
        chunk = ids[first : first + BATCH_LIMIT]
        parts = [{"id": str(n), "method": "GET", "url": f"/me/events/{i}?$select=iCalUId"} for n, i in enumerate(chunk)]
        answers = client.batch(parts, "graph $batch events.get")
        for n, master_id in enumerate(chunk):
            answer = answers.get(str(n), {})
            status, body = int(answer.get("status") or 0), answer.get("body")
            if status in (429, 503):
                text = json.dumps(body) if isinstance(body, (dict, list)) else str(body or "")
                error = read_error(status, answer.get("headers") or {}, text)
                raise RateLimited(f"graph $batch events.get: HTTP {status}: {error.message}", error.retry_after)
            if status == 200 and isinstance(body, dict) and isinstance(body.get("iCalUId"), str):
                found[master_id] = body["iCalUId"]
    return found


def fetch_page(stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` (None, or a window due for renewal, starts a full pass)."""
    if stream not in streams:
        raise ConnectorError(f"outlook_calendar has no stream {stream!r}; it has {streams}")
    renew_after = cursor.get("renew_after") if cursor is not None else None
    due = isinstance(renew_after, str) and _now(ctx).strftime(_STAMP) >= renew_after
    if cursor is not None and cursor.get("phase") == "incremental" and due:
        cursor = None  # the window is due to move: a new round, a new window
    keep = {
        "renew_after": renew_after if cursor is not None else (_now(ctx) + timedelta(days=RENEW_DAYS)).strftime(_STAMP)
    }
    client = open_graph(ctx)
    try:
        delta = fetch_delta(client, cursor, _start(ctx), "graph calendarView/delta", keep)
        wanted = sorted({str(e["seriesMasterId"]) for e in delta.items if isinstance(e.get("seriesMasterId"), str)})
        masters = series_masters(client, wanted) if wanted else {}
    finally:
        client.close()
    observations: list[Observation] = [Deletion(SOURCE, i) for i in delta.removed]
    rejections: list[Rejection] = []
    for event in delta.items:
        observation, rejected = map_event(event, masters)
        if observation is not None:
            observations.append(observation)
        rejections.extend(rejected)
    return Page(observations, rejections, delta.cursor, delta.done, client.calls, delta.full_resync)


def whoami(ctx: FetchContext) -> str:
    """The calendar owner's address from GET /me, normalized."""
    return me_address(ctx)
