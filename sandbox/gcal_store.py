"""The Calendar emulator's live state: calendars, calendar lists, a change counter for sync tokens, mutations.

Every change stamps the touched events with the next value of one counter (`seq`); a sync token is that
counter at the start of a listing, so "changed since" is "seq greater than the token's". Tokens below a
calendar's floor (or older than the `calendar_sync_retention` knob allows) are refused with 410, as
Google does when a token has expired. Events are never hard-deleted: a cancelled event stays as a
tombstone, as in Google.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sandbox.gcal_model import Attendee, Calendar, CalEvent, When, occurrences
from sandbox.gcal_tokens import ChangeLog

CalendarEntry = tuple[str, str]  # (calendar id, the member's accessRole on it)
_EDITABLE = frozenset(
    {"summary", "start", "end", "attendees", "status", "organizer_email", "organizer_name", "recurrence", "event_type"}
)


def new_event_id() -> str:
    """A random id in Google's alphabet (base32hex, lower case)."""
    alphabet = "0123456789abcdefghijklmnopqrstuv"
    return "".join(secrets.choice(alphabet) for _ in range(26))


class CalendarStore:
    """Calendars by id and each member's calendar list; methods are thread-safe under the shared lock."""

    def __init__(
        self,
        calendars: Iterable[Calendar],
        lists: dict[str, list[CalendarEntry]],
        *,
        now: datetime,
        lock: threading.RLock,
        clock: Callable[[], float],
        seq: int = 0,
    ) -> None:
        self.calendars = {c.id: c for c in calendars}
        self.lists = lists
        self.now = now
        self.lock = lock
        self.clock = clock
        self.changes = ChangeLog(seq)

    # -- reading -------------------------------------------------------------------------------------
    def calendar_for(self, member: str, calendar_id: str) -> tuple[Calendar, str] | None:
        """The calendar (with the member's access role) if it is on the member's list; "primary" works."""
        for cid, role in self.lists.get(member, ()):
            cal = self.calendars.get(cid)
            if cal is not None and (cid == calendar_id or (calendar_id == "primary" and cal.primary)):
                return cal, role
        return None

    @property
    def seq(self) -> int:
        return self.changes.seq

    def expanded(self, cal: Calendar) -> list[CalEvent]:
        """One-offs and every instance of every series (overrides applied): singleEvents=true."""
        out: list[CalEvent] = []
        for event in cal.events.values():
            if event.recurring_event_id is not None and event.recurring_event_id in cal.events:
                continue  # an override: emitted in its series' place
            if not event.recurrence:
                out.append(event)
                continue
            for when in occurrences(event, self.now):
                out.append(self._instance(cal, event, when))
        return out

    def _instance(self, cal: Calendar, series: CalEvent, when: When) -> CalEvent:
        instance_id = f"{series.id}_{when.id_suffix()}"
        override = cal.events.get(instance_id)
        if override is not None:
            inst = override.copy()
            inst.seq = max(inst.seq, series.seq)
        else:
            inst = series.copy()
            inst.id = instance_id
            inst.recurrence = ()
            inst.recurring_event_id = series.id
            inst.original_start = when
            inst.start = when
            inst.end = _shifted_end(series, when)
        if series.status == "cancelled":
            inst.status = "cancelled"
        return inst

    # -- mutations -------------------------------------------------------------------------------------
    def _tick(self) -> tuple[int, datetime]:
        return self.changes.tick(), datetime.fromtimestamp(self.clock(), UTC)

    def add_event(
        self,
        owner: str,
        *,
        summary: str,
        start: When | None,
        end: When | None,
        attendees: Iterable[Attendee] = (),
        organizer_email: str | None = None,
        organizer_name: str = "",
        recurrence: Iterable[str] = (),
        calendar_id: str | None = None,
        event_id: str | None = None,
        ical_uid: str | None = None,
        status: str = "confirmed",
        event_type: str = "default",
    ) -> str:
        """A new event on `calendar_id` (default: the owner's primary), copied to invited members' calendars."""
        with self.lock:
            home = self.calendars[calendar_id or owner.lower()]
            seq, stamp = self._tick()
            event = CalEvent(
                id=event_id or new_event_id(),
                ical_uid="",
                summary=summary,
                start=start,
                end=end,
                organizer_email=(organizer_email or home.id).lower(),
                organizer_name=organizer_name,
                attendees=tuple(attendees),
                status=status,
                recurrence=tuple(recurrence),
                event_type=event_type,
                created=stamp,
                updated=stamp,
                seq=seq,
            )
            event.ical_uid = ical_uid or f"{event.id}@google.com"
            home.events[event.id] = event
            for attendee in event.attendees:
                copy_to = self.calendars.get(attendee.email.lower())
                if copy_to is not None and copy_to.primary and copy_to is not home:
                    copy_to.events[event.id] = event.copy()
            return event.id

    def modify_event(self, calendar_id: str, event_id: str, **changes: Any) -> int:
        """Change an event (or one instance of a series) in every calendar holding it; returns how many."""
        unknown = set(changes) - _EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        with self.lock:
            holders = self._holders(calendar_id, event_id)
            seq, stamp = self._tick()
            for cal, current in holders:
                updated = dataclasses.replace(current, **changes, seq=seq, updated=stamp, sequence=current.sequence + 1)
                if "attendees" in changes:
                    updated.attendees = tuple(changes["attendees"])
                cal.events[event_id] = updated
            return len(holders)

    def cancel_event(self, calendar_id: str, event_id: str) -> int:
        """Cancel an event, a whole series, or one instance (an override with status cancelled)."""
        return self.modify_event(calendar_id, event_id, status="cancelled")

    def _holders(self, calendar_id: str, event_id: str) -> list[tuple[Calendar, CalEvent]]:
        """The calendars holding the event (stored, or as an instance of a stored series), and its state."""
        if calendar_id not in self.calendars:
            raise KeyError(calendar_id)
        found: list[tuple[Calendar, CalEvent]] = []
        series_id, _, suffix = event_id.partition("_")
        for cal in self.calendars.values():
            if event_id in cal.events:
                found.append((cal, cal.events[event_id]))
                continue
            series = cal.events.get(series_id)
            if series is None or not series.recurrence or not suffix:
                continue
            when = next((w for w in occurrences(series, self.now) if w.id_suffix() == suffix), None)
            if when is not None:
                found.append((cal, self._instance(cal, series, when)))
        if not any(cal.id == calendar_id for cal, _ in found):
            raise KeyError(event_id)
        return found

    def expire_sync_tokens(self, calendar_id: str | None = None) -> None:
        """Every sync token issued so far (for one calendar, or all) now answers 410."""
        with self.lock:
            self.changes.expire([calendar_id] if calendar_id else list(self.calendars))

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                member: [
                    {"id": cid, "accessRole": role, "events": len(self.calendars[cid].events)}
                    for cid, role in entries
                    if cid in self.calendars
                ]
                for member, entries in self.lists.items()
            }


def _shifted_end(series: CalEvent, start: When) -> When | None:
    """An instance's end: the series' duration after the instance's start."""
    if series.start is None or series.end is None:
        return None
    if series.start.day is not None and series.end.day is not None:
        return start.plus(days=(series.end.day - series.start.day).days)
    return start.plus(delta=series.end.utc() - series.start.utc())
