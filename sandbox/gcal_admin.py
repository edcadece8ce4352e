"""/_sandbox/google control routes for calendars: add, change and cancel events, expire sync tokens."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sandbox.gcal_model import Attendee, When
from sandbox.google_state import GoogleState
from sandbox.http import Request

Action = Callable[[Request, list[str]], Any]
Route = tuple[str, re.Pattern[str], Action]


def when_from_json(value: Any) -> When | None:
    """A start or end from JSON: "2026-10-01T10:00:00Z", {"date": …}, {"dateTime": …, "timeZone": …} or null."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"date": value} if len(value) == 10 else {"dateTime": value}
    if "date" in value:
        return When.all_day(date.fromisoformat(value["date"]))
    at = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError("dateTime needs an offset")
    return When.timed(at, str(value.get("timeZone", "UTC")))


def attendees_from_json(items: Any) -> list[Attendee]:
    return [
        Attendee(
            str(a["email"]),
            str(a.get("displayName", "")),
            str(a.get("responseStatus", "needsAction")),
            bool(a.get("resource", False)),
            bool(a.get("optional", False)),
        )
        for a in items
    ]


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    """Event fields from JSON in the store's terms."""
    out: dict[str, Any] = {}
    for key in ("summary", "status"):
        if key in body:
            out[key] = str(body[key])
    for key in ("start", "end"):
        if key in body:
            out[key] = when_from_json(body[key])
    if "attendees" in body:
        out["attendees"] = attendees_from_json(body["attendees"])
    if "recurrence" in body:
        out["recurrence"] = tuple(str(r) for r in body["recurrence"])
    if "eventType" in body:
        out["event_type"] = str(body["eventType"])
    organizer = body.get("organizer") or {}
    if "email" in organizer:
        out["organizer_email"] = str(organizer["email"]).lower()
        out["organizer_name"] = str(organizer.get("displayName", ""))
    return out


def calendar_routes(state: GoogleState) -> list[Route]:
    """The routes, relative to /_sandbox/google."""
    events = r"^/calendars/([^/]+)/events"

    def add(req: Request, p: list[str]) -> Any:
        body = req.json()
        fields = _changes(body)
        cal = state.calendar.calendars[p[0]]
        owner = str(body.get("owner") or cal.owner or cal.id)
        calendar_id = None if cal.primary else cal.id
        event_id = state.calendar.add_event(
            owner, calendar_id=calendar_id, event_id=body.get("id"), ical_uid=body.get("iCalUID"),
            summary=fields.pop("summary", "Meeting"), start=fields.pop("start", None), end=fields.pop("end", None),
            **fields,
        )  # fmt: skip
        return {"id": event_id}

    def modify(req: Request, p: list[str]) -> Any:
        return {"copies": state.calendar.modify_event(p[0], p[1], **_changes(req.json()))}

    def cancel(req: Request, p: list[str]) -> Any:
        return {"copies": state.calendar.cancel_event(p[0], p[1])}

    def expire(req: Request, p: list[str]) -> Any:
        state.calendar.expire_sync_tokens(req.json().get("calendar"))
        return {"seq": state.calendar.seq}

    return [
        ("GET", re.compile(r"^/calendars$"), lambda r, p: state.calendar.summary()),
        ("POST", re.compile(events + "$"), add),
        ("PATCH", re.compile(events + r"/([^/]+)$"), modify),
        ("POST", re.compile(events + r"/([^/]+)/cancel$"), cancel),
        ("POST", re.compile(r"^/calendars/sync-tokens/expire$"), expire),
    ]
