"""The multi-source oracle: the contact network DESIGN.md's rules derive from everything the emulators serve.

It reads the raw data each emulator of the sandbox holds for the connected reps (Gmail copies, Outlook
messages, both calendars, both address books, the Salesforce org, the HubSpot portal) through the
readers in oracle_mailcal.py, oracle_books.py and oracle_crm.py, and applies the rules here and in
oracle_people.py, never the product's code: the only product import is the free-mail list (data).
Each reader's docstring lists its decisions where DESIGN.md leaves room. Decisions of this module:

- One activity per key (Message-ID, iCalUID + instance start, CRM source and id) over every source; its
  time is the earliest of its copies' times; its participants are the union of its copies' (each
  (role, person) once; declined only if every copy says so); it is noise when a copy is, or when more than
  25 distinct people take part.
- A CRM user reference stands for the member whose address the user record carries.
- An interaction is one (activity, member, contact, kind): a member who sends one email to two
  addresses of one person, or whose logged CRM email is the same email as the mailbox copy, has one
  `email_out` with that person, as DESIGN.md counts one activity per real-world event.
- A malformed From (any copy without a sender) means no email interactions; CRM owner interactions of
  the same activity still count.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sandbox.server import Sandbox
from tests.e2e.oracle import decayed_strength, is_external
from tests.e2e.oracle_books import google_records, outlook_records
from tests.e2e.oracle_crm import hubspot_copies, hubspot_records, salesforce_copies, salesforce_records
from tests.e2e.oracle_mailcal import gmail_copies, google_calendar_copies, outlook_calendar_copies, outlook_mail_copies
from tests.e2e.oracle_model import Copy, Party, Record
from tests.e2e.oracle_people import Profile, Profiles, people, record_ties

WEIGHTS = {"email_out": 1.0, "email_in": 0.7, "meeting": 3.0, "call": 2.0}
KINDS = tuple(WEIGHTS)
MAX_PARTICIPANTS = 25
OWNED = {
    "call": "call",
    "crm_email": "email_out",
    "crm_email_in": "email_in",
    "email": "email_out",
    "meeting": "meeting",
}
USER_REFS = ("ref:salesforce:user:", "ref:hubspot:owner:")


@dataclass(frozen=True)
class Raw:
    """What the emulators serve the connected reps: every copy and every record."""

    copies: list[Copy]
    records: list[Record]


def read_sandbox(sandbox: Sandbox, connected: Sequence[str], now: datetime, backfill_days: int) -> Raw:
    """The emulators' live state for the reps who connected every provider."""
    oldest = now - timedelta(days=backfill_days)
    google, microsoft = sandbox.google, sandbox.microsoft
    with google.lock:
        mailboxes = {
            m: [dataclasses.replace(e.msg, label_ids=e.label_ids) for e in google.mailbox(m).entries.values()]
            for m in connected
        }
        copies = gmail_copies(mailboxes, oldest)
        copies += google_calendar_copies(google.calendar, connected, oldest)
        records = google_records(google.people, connected)
    mail = {m: microsoft.live(m, "mail:inbox") + microsoft.live(m, "mail:sentitems") for m in connected}
    copies += outlook_mail_copies(mail, oldest)
    calendars = {m: (microsoft.live(m, "events"), microsoft.live(m, "masters")) for m in connected}
    copies += outlook_calendar_copies(calendars, now, oldest)
    records += outlook_records({m: microsoft.live(m, "contacts") for m in connected})
    with sandbox.salesforce.lock:
        records += salesforce_records(sandbox.salesforce.data, len(connected))
        copies += salesforce_copies(sandbox.salesforce.data, len(connected))
    with sandbox.hubspot.lock:
        records += hubspot_records(sandbox.hubspot.portal, len(connected))
        copies += hubspot_copies(sandbox.hubspot.portal, len(connected))
    return Raw(copies, records)


@dataclass
class Tie:
    """One member's relationship with one person."""

    member: str
    times: list[tuple[str, datetime]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found = Counter(kind for kind, _ in self.times)
        return {kind: found[kind] for kind in KINDS}

    def first_at(self) -> datetime:
        return min(at for _, at in self.times)

    def last_at(self) -> datetime:
        return max(at for _, at in self.times)

    def strength(self, now: datetime) -> float:
        return decayed_strength(self.times, now, WEIGHTS)


@dataclass
class Person:
    keys: frozenset[str]  # "email:…" and "ref:…" identities
    profile: Profile
    ties: dict[str, Tie] = field(default_factory=dict)

    @property
    def emails(self) -> list[str]:
        return sorted(k.removeprefix("email:") for k in self.keys if k.startswith("email:"))


@dataclass
class Network:
    """The persons, the activities (noise ones apart) and the CRM merges the rules give."""

    people: list[Person]
    activities: set[str]
    noise: set[str]
    merges: dict[str, str]  # merged-away record ref -> the ref of the record it was merged into
    now: datetime

    def person_with(self, key: str) -> Person | None:
        return next((p for p in self.people if key in p.keys), None)


@dataclass
class _Activity:
    key: str
    kinds: set[str]
    time: datetime
    noise: bool
    malformed_from: bool
    parties: dict[tuple[str, str], bool]  # (role, who) -> declined (in every copy)


def _activities(copies: Iterable[Copy], users: dict[str, str]) -> list[_Activity]:
    by_key: dict[str, list[Copy]] = defaultdict(list)
    for copy in copies:
        by_key[copy.key].append(copy)
    out = []
    for key, group in by_key.items():
        parties: dict[tuple[str, str], bool] = {}
        for party in (p for c in group for p in c.parties):
            who = _who(party, users)
            if who is not None:
                parties[(party.role, who)] = parties.get((party.role, who), True) and party.declined
        distinct = {who for _, who in parties}
        out.append(
            _Activity(
                key,
                {c.kind for c in group},
                min(c.time for c in group),
                any(c.noise for c in group) or len(distinct) > MAX_PARTICIPANTS,
                any(c.malformed_from for c in group),
                parties,
            )
        )
    return out


def key_of(who: str) -> str:
    """The identity key of a rules-level participant."""
    return who if who.startswith("ref:") else f"email:{who}"


def _who(party: Party, users: dict[str, str]) -> str | None:
    """A participant as the rules see it: an address, a member behind a CRM user, or a record reference."""
    if party.who in users:
        return users[party.who]
    return None if party.who.startswith(USER_REFS) else party.who


def _interactions(activity: _Activity, members: frozenset[str], domains: frozenset[str]) -> set[tuple[str, str, str]]:
    """(member, external participant, kind) of one non-noise activity, by DESIGN.md's rules."""

    def external(who: str) -> bool:
        return who.startswith("ref:") or is_external(who, members, domains)

    with_role = defaultdict(set)
    for (role, who), declined in activity.parties.items():
        with_role[role, declined].add(who)

    def having(*roles: str, declined: bool | None = None) -> set[str]:
        return {w for (r, d), ws in with_role.items() if r in roles and declined in (None, d) for w in ws}

    found: set[tuple[str, str, str]] = set()
    if not activity.malformed_from:
        recipients = having("to", "cc", "bcc")
        for sender in having("from"):
            if sender in members:
                found |= {(sender, r, "email_out") for r in recipients if external(r)}
            elif external(sender):
                found |= {(r, sender, "email_in") for r in recipients if r in members}
    present = {w for w in having("organizer") | having("attendee", declined=False) if w in members}
    attending = {w for w in having("organizer") | having("attendee", declined=False) if external(w)}
    found |= {(m, e, "meeting") for m in present for e in attending}
    owned = next(OWNED[k] for k in sorted(activity.kinds))
    owners = {w for w in having("owner") if w in members}
    found |= {(m, e, owned) for m in owners for e in having("associated") if external(e)}
    return found


def expected_network(raw: Raw, *, members: Sequence[str], org_domains: Sequence[str], now: datetime) -> Network:
    """The network DESIGN.md's rules give for these copies and records."""
    member_set = frozenset(m.lower() for m in members)
    domains = frozenset(d.lower() for d in org_domains)
    users = {
        f"ref:{r.ref}": email
        for r in raw.records
        if r.kind == "user" and (email := next((e for e in sorted(r.emails) if e in member_set), None))
    }
    activities = _activities(raw.copies, users)
    found: list[tuple[_Activity, set[tuple[str, str, str]]]] = []
    loose: set[str] = set()
    for activity in activities:
        if activity.noise:
            continue
        for _, who in activity.parties:
            if who.startswith("ref:") or is_external(who, member_set, domains):
                loose.add(key_of(who))
        found.append((activity, _interactions(activity, member_set, domains)))
    ties = [record_ties(r, member_set, domains) for r in raw.records]
    profiles = Profiles(ties, raw.copies)
    persons = [Person(keys, profiles.profile(keys)) for keys in people(ties, loose)]
    person_of = {key: person for person in persons for key in person.keys}
    for activity, interactions in found:
        seen: set[tuple[str, int, str]] = set()
        for member, who, kind in sorted(interactions):
            person = person_of[key_of(who)]
            if (member, id(person), kind) not in seen:  # one interaction per (activity, member, person, kind)
                seen.add((member, id(person), kind))
                person.ties.setdefault(member, Tie(member)).times.append((kind, activity.time))
    merges = {m: r.ref for r in raw.records for m in r.merged_from}
    return Network(
        persons,
        {a.key for a in activities},
        {a.key for a in activities if a.noise},
        merges,
        now.astimezone(UTC),
    )
