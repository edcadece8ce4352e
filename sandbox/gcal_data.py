"""Each member's calendars generated from the World: meetings with the people they mail, and the odd cases.

Deterministic per world (seeded by world.seed). Per member: external meetings (some organized by the
external person, some declined, some with another member or a colleague, some in a resource room),
internal meetings, meetings with nobody else, all-day events, cancelled events, an out-of-office block,
a weekly 1:1 series with a moved and a cancelled instance, an open-ended team sync series; every other
member also owns a secondary calendar, and everyone subscribes to holidays. One all-hands with more than
25 attendees lands on every member's calendar. Invited members hold a copy with the same id and iCalUID.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sandbox.gcal_model import Attendee, Calendar, CalEvent, When
from sandbox.gcal_store import CalendarEntry, CalendarStore
from sandbox.people_data import correspondents
from sandbox.world import Person, World

HOLIDAYS_ID = "en.usa#holiday@group.v.calendar.google.com"
MEMBER_ZONES = ("America/New_York", "America/Los_Angeles", "Europe/Paris", "Europe/London")
ROOMS = (
    ("c_18841a2b3c4d5e6f@resource.calendar.google.com", "HQ-3-Boardroom (12)"),
    ("c_18847f6e5d4c3b2a@resource.calendar.google.com", "HQ-2-Huddle (4) [TV]"),
)
TOPICS = (
    "Intro call", "Demo", "Pricing review", "Pilot kickoff", "Security review", "Contract walkthrough",
    "QBR", "Onboarding", "Lunch", "Renewal discussion", "Technical deep dive", "Coffee chat",
)  # fmt: skip
INTERNAL = ("Pipeline review", "Deal desk", "Forecast", "Team retro", "1:1")
_ALPHABET = "0123456789abcdefghijklmnopqrstuv"
_HEX = "0123456789ABCDEF"


class _Builder:
    """Generates every member's calendar into one store; kept private, `calendar_store` is the API."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.rng = random.Random(f"{world.seed}:calendar")
        self.now = world.now
        self.members = list(world.members)
        self.zones = {m: MEMBER_ZONES[i % len(MEMBER_ZONES)] for i, m in enumerate(self.members)}
        self.mail = correspondents(world)
        self.externals = [p for p in world.people if not p.colleague]
        self.colleagues = [p for p in world.people if p.colleague]
        self.calendars: dict[str, Calendar] = {}
        self.lists: dict[str, list[CalendarEntry]] = {m: [] for m in self.members}
        self.seq = 0

    # -- helpers ---------------------------------------------------------------------------------------
    def _id(self) -> str:
        return "".join(self.rng.choice(_ALPHABET) for _ in range(26))

    def _stamp(self) -> tuple[int, datetime]:
        self.seq += 1
        return self.seq, self.now - timedelta(days=self.rng.uniform(0, 30))

    def _contacts(self, member: str) -> list[Person]:
        people = list(self.mail[member].people[:80])
        return people or self.externals[:20]

    def _slot(self, member: str, lo_days: float = -400, hi_days: float = 30) -> When:
        """A weekday business-hours start in the member's zone."""
        zone = ZoneInfo(self.zones[member])
        day = (self.now + timedelta(days=self.rng.uniform(lo_days, hi_days))).astimezone(zone).date()
        while day.weekday() >= 5:
            day -= timedelta(days=1)
        start = datetime.combine(day, time(self.rng.randint(8, 16), self.rng.choice((0, 30))), zone)
        return When.timed(start, self.zones[member])

    def _attendee(self, person: Person, response: str | None = None) -> Attendee:
        email = person.emails[0] if len(person.emails) == 1 or self.rng.random() < 0.85 else person.emails[1]
        status = response or self.rng.choice(("accepted", "accepted", "accepted", "tentative", "needsAction"))
        return Attendee(email, person.name if self.rng.random() < 0.7 else "", status)

    def _member(self, member: str, response: str = "accepted") -> Attendee:
        return Attendee(member, self.world.member_names.get(member, ""), response)

    def _put(self, event: CalEvent, calendars: list[str]) -> None:
        """Store the event on its home calendar and a copy on every invited member's primary calendar."""
        seq, stamp = self._stamp()
        event.seq, event.created, event.updated = seq, stamp - timedelta(days=2), stamp
        for cid in dict.fromkeys(calendars):
            self.calendars[cid].events[event.id] = event.copy()

    def _event(self, summary: str, start: When | None, minutes: int, organizer: Attendee, **kw: object) -> CalEvent:
        eid = self._id()
        outlook = bool(kw.pop("outlook", False))
        ical = f"040000008200E00074C5B7101A82E008{''.join(self.rng.choice(_HEX) for _ in range(40))}" if outlook else ""
        end = None if start is None else start.plus(delta=timedelta(minutes=minutes))
        event = CalEvent(eid, ical or f"{eid}@google.com", summary, start, end, organizer.email, organizer.name)
        for key, value in kw.items():
            setattr(event, key, value)
        return event

    def _invited(self, home: str, attendees: tuple[Attendee, ...]) -> list[str]:
        return [home, *(a.email for a in attendees if a.email in self.calendars and a.email != home)]

    # -- calendars -------------------------------------------------------------------------------------
    def make_calendars(self) -> None:
        holidays = Calendar(HOLIDAYS_ID, "Holidays in United States", "", "UTC")
        self.calendars[HOLIDAYS_ID] = holidays
        for year in (self.now.year - 1, self.now.year):
            for month, day, name in ((1, 1, "New Year's Day"), (7, 4, "Independence Day"), (12, 25, "Christmas Day")):
                when = When.all_day(datetime(year, month, day).date())
                event = self._event(name, when, 0, Attendee(HOLIDAYS_ID, "Holidays in United States"))
                event.end = when.plus(days=1)
                self._put(event, [HOLIDAYS_ID])
        for i, member in enumerate(self.members):
            self.calendars[member] = Calendar(member, member, member, self.zones[member], primary=True)
            self.lists[member] += [(member, "owner"), (HOLIDAYS_ID, "reader")]
            if i % 2 == 0:
                cid = f"c_{self.rng.getrandbits(64):016x}@group.calendar.google.com"
                self.calendars[cid] = Calendar(cid, f"Customer calls ({member})", member, self.zones[member])
                self.lists[member].append((cid, "owner"))
        for i, member in enumerate(self.members):  # a colleague's calendar shared with the member
            other = self.members[(i + 1) % len(self.members)]
            if other != member:
                self.lists[member].append((other, "reader"))

    # -- events ----------------------------------------------------------------------------------------
    def external_meeting(self, member: str) -> None:
        rng = self.rng
        guests = rng.sample(self._contacts(member), min(len(self._contacts(member)), 1 + int(rng.random() ** 2 * 3)))
        attendees = [self._attendee(p) for p in guests]
        external_organizer = rng.random() < 0.35
        if rng.random() < 0.08:
            attendees[0] = Attendee(attendees[0].email, attendees[0].name, "declined")
        me = self._member(member, "declined" if rng.random() < 0.04 else "accepted")
        if rng.random() < 0.15 and len(self.members) > 1:
            attendees.append(self._member(rng.choice([m for m in self.members if m != member])))
        if rng.random() < 0.1 and self.colleagues:
            colleague = rng.choice(self.colleagues)
            attendees.append(Attendee(colleague.email, colleague.name, "accepted"))
        if rng.random() < 0.1:
            attendees.append(Attendee(*rng.choice(ROOMS), "accepted", resource=True))
        organizer = attendees[0] if external_organizer else me
        attendees = (
            [organizer, *[a for a in attendees if a is not organizer], me] if external_organizer else [me, *attendees]
        )
        company = guests[0].company or guests[0].name
        event = self._event(
            f"{rng.choice(TOPICS)}: {company} / Acme",
            self._slot(member),
            rng.choice((30, 45, 60)),
            organizer,
            attendees=tuple(dict((a.email, a) for a in attendees).values()),
            outlook=external_organizer and rng.random() < 0.5,
        )
        self._put(event, self._invited(member, event.attendees))

    def internal_meeting(self, member: str) -> None:
        rng = self.rng
        others = [self._member(m) for m in self.members if m != member and rng.random() < 0.6]
        if self.colleagues:
            colleague = rng.choice(self.colleagues)
            others.append(Attendee(colleague.email, colleague.name, "accepted"))
        me = self._member(member)
        event = self._event(rng.choice(INTERNAL), self._slot(member), 30, me, attendees=(me, *others))
        self._put(event, self._invited(member, event.attendees))

    def odd_events(self, member: str, index: int) -> None:
        """Alone-time, all-day, cancelled and out-of-office events, and two series with exceptions."""
        rng = self.rng
        me = self._member(member)
        for _ in range(3):  # nobody else: still the member's meeting record
            self._put(self._event("Prep / focus", self._slot(member), 60, me), [member])
        conference = self._slot(member, -200, -20)
        day = When.all_day(conference.utc().date())
        guests = tuple(self._attendee(p) for p in self._contacts(member)[:2])
        summit = self._event("SaaStr Annual (booth duty)", day, 0, me, attendees=(me, *guests))
        summit.end = day.plus(days=2)
        self._put(summit, [member])
        offsite = self._event("Team offsite", When.all_day(self._slot(member, -90, -60).utc().date()), 0, me)
        offsite.end = offsite.start.plus(days=1) if offsite.start else None
        self._put(offsite, [member])
        for _ in range(2):
            guest = self._attendee(rng.choice(self._contacts(member)))
            self._put(self._event("Cancelled: sync", self._slot(member), 30, me, attendees=(me, guest),
                                  status="cancelled"), [member])  # fmt: skip
        self._put(self._event("Out of office", self._slot(member, -60, -30), 480, me, event_type="outOfOffice"),
                  [member])  # fmt: skip
        contact = self._attendee(self._contacts(member)[index % len(self._contacts(member))], "accepted")
        weekly = self._event("Weekly 1:1", self._slot(member, -120, -110), 30, me, attendees=(me, contact),
                             recurrence=("RRULE:FREQ=WEEKLY;COUNT=20",))  # fmt: skip
        self._put(weekly, [member])
        self._exceptions(member, weekly)
        team = [self._member(m) for m in self.members]
        sync = self._event("Team sync", self._slot(member, -200, -190), 30, me, attendees=tuple(team),
                           recurrence=("RRULE:FREQ=WEEKLY;INTERVAL=2",))  # fmt: skip
        self._put(sync, self._invited(member, sync.attendees))

    def _exceptions(self, member: str, series: CalEvent) -> None:
        """Instance 3 moved an hour later; instance 5 cancelled (overrides keyed by instance id)."""
        assert series.start is not None
        for k, moved in ((3, True), (5, False)):
            original = series.start.plus(days=7 * k)
            override = series.copy()
            override.id = f"{series.id}_{original.id_suffix()}"
            override.recurrence = ()
            override.recurring_event_id = series.id
            override.original_start = original
            override.start = original.plus(delta=timedelta(hours=1)) if moved else original
            override.end = override.start.plus(delta=timedelta(minutes=30))
            override.status = "confirmed" if moved else "cancelled"
            self._put(override, [member])

    def secondary(self, member: str) -> None:
        """Events organized by the member's secondary calendar itself, with the member invited."""
        cid = next((c for c, role in self.lists[member] if role == "owner" and c != member), None)
        if cid is None:
            return
        for person in self._contacts(member)[:4]:
            me = self._member(member)
            event = self._event("Customer call", self._slot(member), 30, Attendee(cid, self.calendars[cid].summary),
                                attendees=(me, self._attendee(person)))  # fmt: skip
            self._put(event, [cid, member])

    def all_hands(self) -> None:
        host = self.members[0]
        crowd = [self._member(m) for m in self.members]
        crowd += [Attendee(p.email, p.name, "accepted") for p in self.colleagues]
        crowd += [self._attendee(p) for p in self.externals[: max(0, 30 - len(crowd))]]
        crowd.append(Attendee(*ROOMS[0], "accepted", resource=True))
        event = self._event("All-hands + partners", self._slot(host, -45, -40), 60, crowd[0], attendees=tuple(crowd))
        self._put(event, self._invited(host, event.attendees))

    def run(self) -> tuple[list[Calendar], dict[str, list[CalendarEntry]], int]:
        self.make_calendars()
        if not self.externals:  # a world without people: empty calendars
            return list(self.calendars.values()), self.lists, self.seq
        meetings = max(20, min(400, len(self.world.people) // 2))
        for index, member in enumerate(self.members):
            for _ in range(meetings):
                if self.rng.random() < 0.85:
                    self.external_meeting(member)
                else:
                    self.internal_meeting(member)
            self.odd_events(member, index)
            self.secondary(member)
        self.all_hands()
        return list(self.calendars.values()), self.lists, self.seq


def calendar_store(world: World, *, lock: threading.RLock, clock: Callable[[], float]) -> CalendarStore:
    """A fresh store holding the world's generated calendars."""
    calendars, lists, seq = _Builder(world).run()
    return CalendarStore(calendars, lists, now=world.now.astimezone(UTC), seq=seq, lock=lock, clock=clock)
