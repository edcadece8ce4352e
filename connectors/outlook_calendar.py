"""Outlook calendar as a source: calendarView delta over a fixed window (stream `events`), Calendars.Read.

The window (backfill days back, FUTURE_DAYS ahead) is fixed for a delta round and kept in Graph's
tokens; once `renew_after` passes, the next page starts a fresh full pass with a window around the
new date (Graph cannot slide a round's window). Occurrences are keyed by their series master's
iCalUId, fetched with $batch GETs of /me/events/{id} (20 per call) for the masters a page mentions.

Cursor, stored verbatim by the sync layer: connectors.graph_delta's, plus "renew_after" (ISO UTC) and the
series masters resolved so far:
  {"phase": P, "link": L, "renew_after": R, "masters": {master id: iCalUId}}
"masters" is a cache that outlives pages and rounds: a page asks $batch only for the masters it names
that are not in it, so a delta round looks each master up once (the bench's minimum: delta pages plus
ceil(distinct masters / 20) $batch calls). A master's iCalUId never changes (ids are ImmutableId), so an
entry never goes stale; a new round (renewal, or a full pass the sync layer starts from a cursor) keeps
the cache, since its pages name mostly the same series and incremental pages (an edited occurrence)
then cost no lookup either. Only a start from no cursor (a reset, an expired cursor) begins empty.
  Bound: at most MAX_MASTERS (2,000) entries, least recently used first in the map's order (a page
  moves the masters it names to the end; the oldest beyond the bound are dropped). A page names at
  most MAX_PAGE_SIZE (1,000) masters, so its own always fit. Cursor size: about 270 bytes an entry at
  Graph's lengths (~150-char ids, 112-char iCalUIds), so at most ~0.55 MB; ~135 bytes an entry with the
  emulator's ids. A store that reordered the map's keys would only make eviction less apt, never wrong.
  A cursor without "masters" (written before the cache) reads as an empty cache.
Master lookups Graph throttles (a part answered 429/503, or the whole $batch call) do not lose the
page's progress: no further $batch is sent, and the page comes back with no observations, `retry_after`
set, and a cursor that GETs the same page again, its "masters" holding the iCalUIds resolved so far:
      L is the throttled page's own link (for a round's first page, the initial request with its
      window), which Graph serves again; the retry asks only for the other masters, then emits the
      whole page once. A retry due for renewal starts the new round (the cache kept).
A try that resolves no master raises RateLimited instead: the cursor handed in is retried as it is.
A "masters" that is not a map of ids to iCalUIds is not this module's: CursorExpired.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from requests.structures import CaseInsensitiveDict

from connectors.base import (
    JSON,
    ConnectorError,
    CursorExpired,
    Deletion,
    FetchContext,
    Observation,
    Page,
    RateLimited,
    Rejection,
)
from connectors.graph_delta import DeltaPage, fetch_delta
from connectors.graph_http import (
    BATCH_LIMIT,
    MAX_PAGE_SIZE,
    GraphClient,
    GraphError,
    me_address,
    open_graph,
    read_error,
)
from connectors.outlook_calendar_mapping import SOURCE, map_event

name: str = SOURCE
provider: str = "microsoft"
streams: tuple[str, ...] = ("events",)
scopes: tuple[str, ...] = ("Calendars.Read", "User.Read")
FUTURE_DAYS = 180
RENEW_DAYS = 30
_STAMP = "%Y-%m-%dT%H:%M:%SZ"
_LOOKUP = "graph $batch events.get"
MAX_MASTERS = 2 * MAX_PAGE_SIZE  # the masters cache's bound (module docstring): a page's own always fit


@dataclass(frozen=True)
class Lookup:
    """The masters' iCalUIds one page resolved, and the throttle that stopped it early (if any)."""

    found: dict[str, str] = field(default_factory=dict)
    throttled: RateLimited | None = None


def _now(ctx: FetchContext) -> datetime:
    return ctx.now if ctx.now.tzinfo is not None else ctx.now.replace(tzinfo=UTC)


def _start(ctx: FetchContext) -> tuple[str, dict[str, str]]:
    now = _now(ctx)
    window = {
        "startDateTime": (now - timedelta(days=ctx.backfill_days)).strftime(_STAMP),
        "endDateTime": (now + timedelta(days=FUTURE_DAYS)).strftime(_STAMP),
    }
    return "me/calendarView/delta", window


def _part_error(answer: JSON) -> GraphError:
    """A $batch part's error as Graph states it, its Retry-After read from the part's own headers."""
    status, body = int(answer.get("status") or 0), answer.get("body")
    text = json.dumps(body) if isinstance(body, (dict, list)) else str(body or "")
    return read_error(status, CaseInsensitiveDict(answer.get("headers") or {}), text)


def _read_chunk(chunk: list[str], answers: dict[str, JSON]) -> tuple[dict[str, str], list[GraphError]]:
    """One batch's iCalUIds by master id, and its throttled parts' errors (other failures are left out)."""
    found: dict[str, str] = {}
    throttled: list[GraphError] = []
    for n, master_id in enumerate(chunk):
        answer = answers.get(str(n), {})
        body = answer.get("body")
        if answer.get("status") == 200 and isinstance(body, dict) and isinstance(body.get("iCalUId"), str):
            found[master_id] = body["iCalUId"]
            continue
        error = _part_error(answer)
        if isinstance(error.exception(_LOOKUP), RateLimited):
            throttled.append(error)
    return found, throttled


def _throttle(errors: list[GraphError], parts: int) -> RateLimited:
    """One RateLimited for a batch's throttled parts, asking for the longest wait any of them gave."""
    worst = max(errors, key=lambda e: e.retry_after)
    text = f"{_LOOKUP}: HTTP {worst.status}: {worst.message} ({len(errors)} of {parts} parts)"
    return RateLimited(text, worst.retry_after)


def series_masters(client: GraphClient, ids: list[str]) -> Lookup:
    """{series master id: its iCalUId} by $batch (20 per call); a master that cannot be read is left out.

    A batch with throttled parts (or throttled whole) is the last one sent: a later one would come
    before its Retry-After. What was resolved so far is kept, with the throttle.
    """
    found: dict[str, str] = {}
    for first in range(0, len(ids), BATCH_LIMIT):
        chunk = ids[first : first + BATCH_LIMIT]
        parts = [{"id": str(n), "method": "GET", "url": f"/me/events/{i}?$select=iCalUId"} for n, i in enumerate(chunk)]
        try:
            answers = client.batch(parts, _LOOKUP)
        except RateLimited as exc:
            return Lookup(found, exc)
        resolved, throttled = _read_chunk(chunk, answers)
        found.update(resolved)
        if throttled:
            return Lookup(found, _throttle(throttled, len(chunk)))
    return Lookup(found)


def _current(cursor: JSON | None, ctx: FetchContext) -> JSON | None:
    """The cursor to go on from: None when a round starts (none yet, or an incremental window due to move)."""
    renew_after = cursor.get("renew_after") if cursor is not None else None
    due = isinstance(renew_after, str) and _now(ctx).strftime(_STAMP) >= renew_after
    if cursor is not None and cursor.get("phase") == "incremental" and due:
        return None  # the window is due to move: a new round, a new window
    return cursor


def _keep(cursor: JSON | None, ctx: FetchContext) -> JSON:
    """What this stream adds to graph_delta's cursor: the round's renewal time, set as the round begins."""
    if cursor is not None:
        return {"renew_after": cursor.get("renew_after")}
    return {"renew_after": (_now(ctx) + timedelta(days=RENEW_DAYS)).strftime(_STAMP)}


def _known(cursor: JSON | None) -> dict[str, str]:
    """The masters cache the cursor carries, least recently used first; a map this module did not write expires."""
    known = {} if cursor is None else cursor.get("masters", {})
    if not isinstance(known, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in known.items()):
        raise CursorExpired("outlook_calendar cursor not understood: masters is not a map of ids to iCalUIds")
    return {str(k): str(v) for k, v in known.items()}


def _remember(known: dict[str, str], used: dict[str, str]) -> dict[str, str]:
    """The cache after a page: `used` (the masters it named) moved to the recent end, the least recently
    used beyond MAX_MASTERS dropped (never one of `used`)."""
    merged = {**{k: v for k, v in known.items() if k not in used}, **used}
    excess = len(merged) - max(MAX_MASTERS, len(used))
    return dict(list(merged.items())[excess:]) if excess > 0 else merged


def _again(client: GraphClient, cursor: JSON | None, ctx: FetchContext, keep: JSON) -> JSON:
    """A cursor that GETs the page `cursor` led to once more (a round's first page: its initial request)."""
    if cursor is None:
        path, window = _start(ctx)
        return {**keep, "phase": "full", "link": f"{client.url(path)}?{urlencode(window)}"}
    return {**keep, "phase": cursor["phase"], "link": cursor["link"]}


def _mapped(delta: DeltaPage, masters: dict[str, str], cache: dict[str, str], calls: int) -> Page:
    """The whole page mapped, each occurrence keyed by its master's iCalUId when it could be read."""
    observations: list[Observation] = [Deletion(SOURCE, i) for i in delta.removed]
    rejections: list[Rejection] = delta.rejected(SOURCE)
    for event in delta.items:
        observation, rejected = map_event(event, masters)
        if observation is not None:
            observations.append(observation)
        rejections.extend(rejected)
    cursor = {**delta.cursor, "masters": cache}
    return Page(observations, rejections, cursor, delta.done, calls, delta.full_resync)


def fetch_page(stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` (None, or a window due for renewal, starts a full pass); see the module docstring."""
    if stream not in streams:
        raise ConnectorError(f"outlook_calendar has no stream {stream!r}; it has {streams}")
    known = _known(cursor)  # read before a due renewal drops the cursor: the cache outlives rounds
    cursor = _current(cursor, ctx)
    keep = _keep(cursor, ctx)
    client = open_graph(ctx)
    try:
        delta = fetch_delta(client, cursor, _start(ctx), "graph calendarView/delta", keep)
        wanted = sorted({str(e["seriesMasterId"]) for e in delta.items if isinstance(e.get("seriesMasterId"), str)})
        lookup = series_masters(client, [i for i in wanted if i not in known])
        again = _again(client, cursor, ctx, keep)
    finally:
        client.close()
    masters = {**{i: known[i] for i in wanted if i in known}, **lookup.found}
    cache = _remember(known, masters)
    if lookup.throttled is None:
        return _mapped(delta, masters, cache, client.calls)
    if not lookup.found:
        raise lookup.throttled  # no progress to keep: the cursor handed in is as good as any
    return Page(
        [], [], {**again, "masters": cache}, False, client.calls, delta.full_resync, lookup.throttled.retry_after
    )


def whoami(ctx: FetchContext) -> str:
    """The calendar owner's address from GET /me, normalized."""
    return me_address(ctx)
