"""Calendar v3 values the emulator stores (calendars, events, times) and the RRULE subset it expands."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

RECURRENCE_HORIZON_DAYS = 400  # an endless series is expanded this far past the world's `now`
_STEPS = {"DAILY": 1, "WEEKLY": 7}


@dataclass(frozen=True, slots=True)
class When:
    """An EventDateTime: a date (all-day) or an instant shown in an IANA time zone."""

    day: date | None = None
    at: datetime | None = None  # aware, UTC
    tz: str = "UTC"

    @staticmethod
    def timed(at: datetime, tz: str = "UTC") -> When:
        return When(at=at.astimezone(UTC), tz=tz)

    @staticmethod
    def all_day(day: date) -> When:
        return When(day=day)

    def utc(self) -> datetime:
        """The instant (an all-day date counts from midnight UTC)."""
        if self.at is not None:
            return self.at
        assert self.day is not None
        return datetime.combine(self.day, time(), UTC)

    def plus(self, days: int = 0, delta: timedelta = timedelta()) -> When:
        """Shifted by whole local days (wall clock kept across DST) and then by `delta`."""
        if self.day is not None:
            return When(day=self.day + timedelta(days=days))
        assert self.at is not None
        zone = ZoneInfo(self.tz)
        local = self.at.astimezone(zone).replace(tzinfo=None) + timedelta(days=days)
        return When(at=local.replace(tzinfo=zone).astimezone(UTC) + delta, tz=self.tz)

    def resource(self) -> dict[str, str]:
        if self.day is not None:
            return {"date": self.day.isoformat()}
        assert self.at is not None
        local = self.at.astimezone(ZoneInfo(self.tz))
        return {"dateTime": local.isoformat(timespec="seconds"), "timeZone": self.tz}

    def id_suffix(self) -> str:
        """How an instance id names its original start: 20261005T160000Z, or 20261005 all-day."""
        if self.day is not None:
            return self.day.strftime("%Y%m%d")
        return self.utc().strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str
    name: str = ""
    response: str = "needsAction"  # needsAction, declined, tentative, accepted
    resource: bool = False
    optional: bool = False


@dataclass(slots=True)
class CalEvent:
    """A stored event: a one-off, a recurring series (recurrence set) or one instance's override."""

    id: str
    ical_uid: str
    summary: str
    start: When | None
    end: When | None
    organizer_email: str
    organizer_name: str = ""
    attendees: tuple[Attendee, ...] = ()
    status: str = "confirmed"  # confirmed, tentative, cancelled
    recurrence: tuple[str, ...] = ()
    recurring_event_id: str | None = None
    original_start: When | None = None
    event_type: str = "default"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    seq: int = 0  # the store's change counter at this event's last change
    sequence: int = 0  # iCalendar SEQUENCE

    def copy(self) -> CalEvent:
        return dataclasses.replace(self)


@dataclass(slots=True)
class Calendar:
    """One calendar and its stored events (series, one-offs and instance overrides by id)."""

    id: str
    summary: str
    owner: str  # the member whose calendar this is ("" for public ones such as holidays)
    time_zone: str
    primary: bool = False
    events: dict[str, CalEvent] = field(default_factory=dict)


def parse_rrule(rule: str) -> dict[str, str]:
    """The parts of an RRULE line: RRULE:FREQ=WEEKLY;COUNT=10 -> {"FREQ": "WEEKLY", "COUNT": "10"}."""
    body = rule.split(":", 1)[1] if ":" in rule else rule
    return {k.upper(): v for k, _, v in (part.partition("=") for part in body.split(";") if part)}


def _until(raw: str) -> datetime:
    if "T" in raw:
        return datetime.strptime(raw.rstrip("Z"), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return datetime.combine(datetime.strptime(raw, "%Y%m%d").date(), time(23, 59, 59), UTC)


def occurrences(series: CalEvent, now: datetime) -> Iterator[When]:
    """Original start times of a series: FREQ DAILY/WEEKLY with INTERVAL, COUNT or UNTIL (else a horizon)."""
    if series.start is None:
        return
    rules = [parse_rrule(r) for r in series.recurrence if r.upper().startswith("RRULE")]
    if not rules:
        yield series.start
        return
    rule = rules[0]
    step = _STEPS.get(rule.get("FREQ", "").upper())
    if step is None:  # outside the emulator's subset: the first occurrence only
        yield series.start
        return
    step *= max(1, int(rule.get("INTERVAL", "1")))
    count = int(rule["COUNT"]) if "COUNT" in rule else None
    until = _until(rule["UNTIL"]) if "UNTIL" in rule else now + timedelta(days=RECURRENCE_HORIZON_DAYS)
    k = 0
    while count is None or k < count:
        when = series.start.plus(days=k * step)
        if when.utc() > until:
            return
        yield when
        k += 1
