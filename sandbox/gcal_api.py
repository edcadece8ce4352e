"""Calendar API v3 (calendarList.list, calendars.get, events.list) with page tokens and expiring sync tokens.

events.list follows the reference: singleEvents expands series into instances (overrides applied),
maxResults defaults to 250 and never exceeds 2500, timeMin/timeMax bound the end/start, a syncToken
returns every change since it (cancellations included) and refuses timeMin, timeMax, q, orderBy,
iCalUID and updatedMin, an expired token answers 410 fullSyncRequired. Listings are ordered by last
change, so an event changed while a client pages moves behind it and is still seen; the sync token
of the last page is the change counter when the first page was served.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sandbox import google_errors as errors
from sandbox.gcal_model import Calendar, CalEvent, occurrences
from sandbox.gcal_query import ArgError, bool_arg, int_arg, time_arg
from sandbox.gcal_render import calendar_list_entry, calendar_resource, event_resource, rfc3339
from sandbox.gcal_store import CalendarStore
from sandbox.gcal_tokens import Signer, filter_key
from sandbox.google_state import AccessToken, GoogleState
from sandbox.http import Request, Response, json_response
from sandbox.partial import FieldsError, apply_fields, parse_fields

_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^/calendar/v3/users/me/calendarList$"), "calendar_list"),
    (re.compile(r"^/calendar/v3/calendars/([^/]+)$"), "calendar_get"),
    (re.compile(r"^/calendar/v3/calendars/([^/]+)/events$"), "events"),
)
READ_SCOPES = frozenset(
    {"https://www.googleapis.com/auth/calendar", "https://www.googleapis.com/auth/calendar.readonly"}
)
EVENT_SCOPES = READ_SCOPES | {
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.events.readonly",
}
NOT_WITH_SYNC_TOKEN = ("timeMin", "timeMax", "q", "orderBy", "iCalUID", "updatedMin")
ROLES = ("freeBusyReader", "reader", "writer", "owner")
EVENTS_DEFAULT, EVENTS_MAX = 250, 2500
LIST_DEFAULT, LIST_MAX = 100, 250


def gone() -> Response:
    """410 as Calendar answers an expired sync token (no gRPC status in this API's errors)."""
    message = "Sync token is no longer valid, a full sync is required."
    body = {"error": {"errors": [{"domain": "global", "reason": "fullSyncRequired", "message": message}],
                      "code": 410, "message": message}}  # fmt: skip
    return json_response(body, 410, (("Vary", "Origin"),))


def _bad(message: str) -> Response:
    return errors.bad_request(message, "invalid")


class CalendarApi:
    """Answers one authorised Calendar operation; auth, quota, faults and counting happen in google_app."""

    kinds = frozenset({"calendar_list", "calendar_get", "events"})

    def __init__(self, state: GoogleState) -> None:
        self.state = state
        self.signer = Signer(state.world.seed if state.world is not None else 0, "calendar")

    @staticmethod
    def match(path: str) -> tuple[str, list[str]] | None:
        for pattern, kind in _ROUTES:
            m = pattern.match(path)
            if m:
                return kind, [urllib.parse.unquote(g) for g in m.groups()]
        return None

    @staticmethod
    def scopes(kind: str) -> frozenset[str]:
        return EVENT_SCOPES if kind == "events" else READ_SCOPES

    def handle(self, kind: str, params: list[str], req: Request, token: AccessToken) -> Response:
        if req.method != "GET":
            return errors.api_error(405, "Method not allowed.", "methodNotAllowed")
        try:
            mask = parse_fields(req.arg("fields") or "") if req.arg("fields") else None
        except FieldsError as exc:
            return errors.bad_request(str(exc), "invalidParameter")
        store = self.state.calendar
        try:
            with store.lock:
                if kind == "calendar_list":
                    result = self._calendar_list(req, store, token.mailbox)
                else:
                    found = store.calendar_for(token.mailbox, params[0])
                    if found is None:
                        return errors.not_found()
                    if kind == "calendar_get":
                        result = calendar_resource(found[0], store.seq)
                    else:
                        result = self._events(req, store, *found)
        except ArgError as exc:
            return exc.response
        if isinstance(result, Response):
            return result
        return json_response(apply_fields(result, mask) if mask is not None else result)

    def _calendar_list(self, req: Request, store: CalendarStore, member: str) -> dict[str, Any] | Response:
        if req.arg("syncToken"):
            return _bad("The sandbox does not support syncToken on calendarList.list.")
        size = min(int_arg(req, "maxResults", LIST_DEFAULT, _bad) or LIST_DEFAULT, LIST_MAX)
        floor = req.arg("minAccessRole")
        if floor is not None and floor not in ROLES:
            return _bad(f"Invalid value for minAccessRole: {floor}")
        entries = [
            (store.calendars[cid], role)
            for cid, role in store.lists.get(member, ())
            if cid in store.calendars and (floor is None or ROLES.index(role) >= ROLES.index(floor))
        ]
        start = 0
        if req.arg("pageToken"):
            parts = self.signer.unsign(req.arg("pageToken") or "", "L", 2)
            if parts is None or parts[0] != member:
                return _bad("Invalid page token value.")
            start = int(parts[1])
        body: dict[str, Any] = {"kind": "calendar#calendarList", "etag": f'"p{store.seq}"'}
        if start + size < len(entries):
            body["nextPageToken"] = self.signer.sign("L", member, start + size)
        body["items"] = [calendar_list_entry(cal, role, store.seq) for cal, role in entries[start : start + size]]
        return body

    def _events(self, req: Request, store: CalendarStore, cal: Calendar, role: str) -> dict[str, Any] | Response:
        if role == "freeBusyReader":
            return errors.api_error(403, "Not enough permissions to read events on this calendar.", "forbidden")
        size = int_arg(req, "maxResults", EVENTS_DEFAULT, _bad)
        if size < 1:
            return _bad("Invalid value for maxResults: must be at least 1")
        size = min(size, EVENTS_MAX)
        single = bool(bool_arg(req, "singleEvents", _bad))
        show_deleted = bool_arg(req, "showDeleted", _bad)
        sync_token = req.arg("syncToken")
        since: int | None = None
        if sync_token:
            clash = [name for name in NOT_WITH_SYNC_TOKEN if req.arg(name) is not None]
            if clash or show_deleted is False:
                return _bad(f"The syncToken cannot be used with {', '.join(clash) or 'showDeleted=false'}.")
            parts = self.signer.unsign(sync_token, "S", 2)
            if parts is None or parts[0] != cal.id:
                return _bad("Invalid sync token value.")
            since = int(parts[1])
            if not store.changes.valid(cal.id, since, self.state.calendar_sync_retention):
                return gone()
        order = req.arg("orderBy")
        if order not in (None, "startTime", "updated") or (order == "startTime" and not single):
            return _bad("The requested ordering is not available for the particular query.")
        keep = self._filter(req, store, since, bool(show_deleted))
        fkey = filter_key(cal.id, single, show_deleted, sync_token, *(req.arg(n) for n in NOT_WITH_SYNC_TOKEN))
        first_seq, after = store.seq, None
        page_token = req.arg("pageToken")
        if page_token:
            parts = self.signer.unsign(page_token, "P", 5)
            if parts is None or parts[0] != cal.id or parts[1] != fkey:
                return _bad("Invalid page token value.")
            first_seq, after = int(parts[2]), (parts[3], parts[4])
        key = _order_key(order)
        items = sorted((e for e in (store.expanded(cal) if single else cal.events.values()) if keep(e)), key=key)
        if after is not None:
            items = [e for e in items if key(e) > after]
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"p{store.seq}"',
            "summary": cal.summary,
            "description": "",
            "updated": calendar_updated(cal),
            "timeZone": cal.time_zone,
            "accessRole": role,
            "defaultReminders": [{"method": "popup", "minutes": 10}] if role == "owner" else [],
        }
        if len(items) > size:
            body["nextPageToken"] = self.signer.sign("P", cal.id, fkey, first_seq, *key(items[size - 1]))
        elif not any(req.arg(n) for n in NOT_WITH_SYNC_TOKEN[1:]):  # q, orderBy… listings cannot sync
            body["nextSyncToken"] = self.signer.sign("S", cal.id, first_seq)
        body["items"] = [event_resource(e, cal) for e in items[:size]]
        return body

    @staticmethod
    def _filter(
        req: Request, store: CalendarStore, since: int | None, show_deleted: bool
    ) -> Callable[[CalEvent], bool]:
        """Which events (or instances) a listing keeps."""
        time_min, time_max = time_arg(req, "timeMin", _bad), time_arg(req, "timeMax", _bad)
        updated_min = time_arg(req, "updatedMin", _bad)
        q, ical = (req.arg("q") or "").lower(), req.arg("iCalUID")

        def keep(event: CalEvent) -> bool:
            if since is not None:
                return event.seq > since
            if updated_min is not None:
                return event.updated >= updated_min
            if event.status == "cancelled" and not show_deleted:
                return False
            if (ical and event.ical_uid != ical) or (q and q not in event.summary.lower()):
                return False
            if time_min is not None and not _ends_after(store, event, time_min):
                return False
            return time_max is None or event.start is None or event.start.utc() < time_max

        return keep


def _ends_after(store: CalendarStore, event: CalEvent, moment: datetime) -> bool:
    """timeMin bounds the end; an untimed event always passes; a series passes if any instance does."""
    if event.recurrence:
        last = None
        for last in occurrences(event, store.now):  # noqa: B007 - the last occurrence is what counts
            pass
        if last is None or event.start is None or event.end is None:
            return True
        return last.utc() + (event.end.utc() - event.start.utc()) > moment
    return event.end is None or event.end.utc() > moment


def _order_key(order: str | None) -> Callable[[CalEvent], tuple[str, str]]:
    """Keyset order for paging: last change by default, else start time or `updated`."""
    if order == "startTime":
        return lambda e: (e.start.utc().isoformat() if e.start is not None else "", e.id)
    if order == "updated":
        return lambda e: (e.updated.isoformat(), e.id)
    return lambda e: (f"{e.seq:012d}", e.id)


def calendar_updated(cal: Calendar) -> str:
    latest = max((e.updated for e in cal.events.values()), default=None)
    return rfc3339(latest) if latest is not None else "1970-01-01T00:00:00.000Z"
