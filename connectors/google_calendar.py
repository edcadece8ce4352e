"""Google Calendar as a source: the rep's meetings, one events.list page (up to 2,500 events) per call.

Which calendars: the primary one and the secondary calendars the rep owns (accessRole "owner") -- the
rep's own meetings. Calendars the rep merely subscribes to (holidays, colleagues' calendars shared with
them) are other people's records and stay out. They are read from calendarList at the start of each
full pass; a calendar created later joins at the next full pass.

Each calendar is listed with singleEvents=true (a series comes as its instances) from now minus the
backfill window (timeMin bounds the end), then followed with its nextSyncToken (timeMin is not allowed
beside a syncToken; cancellations come back as status "cancelled" -> Deletion). A 410 (fullSyncRequired)
or a calendar that vanished (404) while following -> CursorExpired: a full pass re-lists and sweeps.

Cursor, stored verbatim by the sync layer:
  {"phase": "full" | "incremental", "calendars": [id, ...], "index": i, "page_token": T (optional),
   "sync_tokens": {id: S, ...}}
The full pass walks calendars[index:] from their first page (sync_tokens holds the finished ones);
incremental walks them from sync_tokens. A page never spans calendars unless the earlier ones answered
nothing, so an unchanged account costs one call per calendar in one page.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import JSON, ConnectorError, CursorExpired, FetchContext, Observation, Page, Rejection
from connectors.emails import InvalidAddress, normalize_email
from connectors.gcal_mapping import map_event, utc_iso
from connectors.google_http import GoogleApi, GoogleError, open_api

name: str = "google_calendar"
provider: str = "google"
streams: tuple[str, ...] = ("events",)
scopes: tuple[str, ...] = ("https://www.googleapis.com/auth/calendar.readonly",)

SERVICE_PATH = "calendar/v3/"
EVENTS_PAGE_MAX = 2500  # the API's ceiling: 4 calls per 10,000 events of a calendar
CALENDAR_LIST_MAX = 250
OWN_ROLES = frozenset({"owner"})
EVENT_FIELDS = (
    "items(id,status,iCalUID,summary,eventType,start,end,recurringEventId,originalStartTime,"
    "organizer(email,displayName),attendees(email,displayName,responseStatus,resource,self,organizer)),"
    "nextPageToken,nextSyncToken"
)


@dataclass(frozen=True)
class _Cursor:
    """Where the walk over the rep's calendars stands (see the module docstring)."""

    phase: str
    calendars: tuple[str, ...]
    index: int = 0
    page_token: str | None = None
    sync_tokens: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def load(raw: JSON) -> _Cursor:
        """The cursor as stored; anything not understood restarts the pass (CursorExpired)."""
        try:
            calendars = tuple(str(c) for c in raw["calendars"])
            cursor = _Cursor(
                str(raw["phase"]),
                calendars,
                int(raw.get("index", 0)),
                str(raw["page_token"]) if raw.get("page_token") else None,
                {str(k): str(v) for k, v in dict(raw.get("sync_tokens") or {}).items()},
            )
        except (KeyError, TypeError, ValueError):
            raise CursorExpired(f"google_calendar cursor not understood: keys {sorted(raw)}") from None
        if cursor.phase not in ("full", "incremental") or not calendars or not 0 <= cursor.index < len(calendars):
            raise CursorExpired(f"google_calendar cursor not understood: phase={cursor.phase!r}")
        if cursor.phase == "incremental" and set(calendars) - set(cursor.sync_tokens):
            raise CursorExpired("google_calendar cursor lacks a sync token")
        return cursor

    def dump(self) -> JSON:
        out: JSON = {"phase": self.phase, "calendars": list(self.calendars), "index": self.index}
        if self.page_token:
            out["page_token"] = self.page_token
        out["sync_tokens"] = dict(self.sync_tokens)
        return out

    @property
    def calendar(self) -> str:
        return self.calendars[self.index]

    def finished(self, sync_token: str) -> _Cursor:
        """The current calendar is caught up at `sync_token`; move to the next one (index past the end: done)."""
        tokens = {**self.sync_tokens, self.calendar: sync_token}
        return replace(self, index=self.index + 1, page_token=None, sync_tokens=tokens)


def _window_start(ctx: FetchContext) -> datetime:
    now = ctx.now if ctx.now.tzinfo is not None else ctx.now.replace(tzinfo=UTC)
    return now - timedelta(days=ctx.backfill_days)


def _own_calendars(api: GoogleApi) -> tuple[str, ...]:
    """The primary calendar first, then the secondary calendars the rep owns (calendarList, paged)."""
    primary: list[str] = []
    owned: list[str] = []
    page_token: str | None = None
    seen: set[str] = set()
    while True:
        listing = api.execute(
            api.service.calendarList().list(
                maxResults=CALENDAR_LIST_MAX, pageToken=page_token, fields="items(id,accessRole,primary),nextPageToken"
            ),
            "google_calendar calendarList.list",
        )
        for entry in listing.get("items") or ():
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                continue
            if entry.get("primary"):
                primary.append(entry["id"])
            elif entry.get("accessRole") in OWN_ROLES:
                owned.append(entry["id"])
        page_token = listing.get("nextPageToken")
        if not page_token:
            break
        if page_token in seen:
            raise ConnectorError("google_calendar calendarList.list: the same page token came back twice")
        seen.add(page_token)
    return tuple(dict.fromkeys([*(primary or ["primary"]), *owned]))


def _list_events(api: GoogleApi, cursor: _Cursor, ctx: FetchContext) -> JSON:
    """One events.list page of the current calendar, as the phase asks."""
    args: dict[str, Any] = {
        "calendarId": cursor.calendar,
        "singleEvents": True,
        "maxResults": EVENTS_PAGE_MAX,
        "pageToken": cursor.page_token,
        "fields": EVENT_FIELDS,
    }
    if cursor.phase == "incremental":
        args |= {"syncToken": cursor.sync_tokens[cursor.calendar], "showDeleted": True}
    else:
        args["timeMin"] = utc_iso(_window_start(ctx))

    def expired(error: GoogleError) -> bool:
        return error.status == 410 or (cursor.phase == "incremental" and error.status == 404)

    return api.execute(api.service.events().list(**args), "google_calendar events.list", expired=expired)


def fetch_page(stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` (None starts a full pass); see the module docstring for the cursor."""
    if stream not in streams:
        raise ConnectorError(f"google_calendar has no stream {stream!r}; it has {streams}")
    state = _Cursor.load(cursor) if cursor is not None else None
    api = open_api(ctx, "calendar", "v3", SERVICE_PATH)
    if state is None:
        state = _Cursor("full", _own_calendars(api))
    full = state.phase == "full"
    window_start = _window_start(ctx)
    observations: list[Observation] = []
    rejections: list[Rejection] = []
    while True:
        response = _list_events(api, state, ctx)
        for item in response.get("items") or ():
            if isinstance(item, dict):
                mapped = map_event(state.calendar, item, window_start)
                if mapped.observation is not None:
                    observations.append(mapped.observation)
                rejections.extend(mapped.rejections)
        next_token = response.get("nextPageToken")
        if next_token:
            if next_token == state.page_token:
                raise ConnectorError("google_calendar events.list: the same page token came back twice")
            return Page(observations, rejections, replace(state, page_token=next_token).dump(), False, api.calls, full)
        sync_token = response.get("nextSyncToken")
        if not sync_token:
            raise ConnectorError(f"google_calendar events.list: last page of {state.calendar} without nextSyncToken")
        state = state.finished(str(sync_token))
        if state.index == len(state.calendars):
            caught_up = replace(state, phase="incremental", index=0)
            return Page(observations, rejections, caught_up.dump(), True, api.calls, full)
        if observations or rejections:
            return Page(observations, rejections, state.dump(), False, api.calls, full)


def whoami(ctx: FetchContext) -> str:
    """The primary calendar's id, which is the account's address."""
    api = open_api(ctx, "calendar", "v3", SERVICE_PATH)
    calendar = api.execute(
        api.service.calendars().get(calendarId="primary", fields="id"), "google_calendar calendars.get"
    )
    try:
        return normalize_email(str(calendar.get("id", "")))
    except InvalidAddress as exc:
        raise ConnectorError(f"google_calendar calendars.get: primary id is not an address ({exc.reason})") from None
