"""A deterministic HubSpot portal grown from the shared World: the same people as in mail, as CRM records.

Owners are the world's members (plus one former rep, archived); contacts are its external people (some
with null properties, a few with a broken email, some entered twice: half of those already merged, the
winner carrying `hs_merged_object_ids`); companies are their companies; calls, meetings and logged emails
are owned by members and associated with contacts. Logged emails reuse the Message-IDs of mail the member
sent from the world's mailboxes, so the CRM copy and the mailbox copy are the same real-world email.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses

from sandbox.world import Person, World

PORTAL_ID = 4242
ENGAGEMENT_TYPES = ("calls", "meetings", "emails")
OBJECT_TYPES = ("contacts", "companies", *ENGAGEMENT_TYPES)
# contacts keep their last-modified date in `lastmodifieddate`; every other object in `hs_lastmodifieddate`
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate"}
CREATED_PROPERTY = {"contacts": "createdate", "companies": "createdate"}
FIRST_ID = {"contacts": 101, "companies": 5_000_001, "engagements": 20_000_001, "owners": 100_000_001}
_DAY_MS = 86_400_000
_SPAN_DAYS = 400


def modified_property(object_type: str) -> str:
    return MODIFIED_PROPERTY.get(object_type, "hs_lastmodifieddate")


def created_property(object_type: str) -> str:
    return CREATED_PROPERTY.get(object_type, "hs_createdate")


def iso(ms: int) -> str:
    """HubSpot's datetime property format: ISO 8601 UTC with milliseconds and a Z."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(slots=True)
class CrmRecord:
    """One CRM object: properties as HubSpot stores them (strings or null), times in epoch ms."""

    id: int
    type: str
    properties: dict[str, str | None]
    created_ms: int
    updated_ms: int
    archived_ms: int | None = None
    associations: dict[str, set[int]] = field(default_factory=dict)  # to-type -> ids

    @property
    def archived(self) -> bool:
        return self.archived_ms is not None

    def stamp(self, ms: int) -> None:
        """Mark the record modified at `ms` (HubSpot keeps the time in a property and in updatedAt)."""
        self.updated_ms = ms
        self.properties[modified_property(self.type)] = iso(ms)


@dataclass(slots=True)
class Owner:
    """A HubSpot user who can own records (the CRM owners API)."""

    id: int
    email: str
    first_name: str | None
    last_name: str | None
    user_id: int
    created_ms: int
    updated_ms: int
    archived: bool = False


@dataclass
class PortalData:
    """Every record by type and id, the owners, the merge trail and the id counters."""

    owners: dict[int, Owner] = field(default_factory=dict)
    records: dict[str, dict[int, CrmRecord]] = field(default_factory=lambda: {t: {} for t in OBJECT_TYPES})
    merged_into: dict[int, int] = field(default_factory=dict)  # merged-away contact id -> winner id
    counters: dict[str, int] = field(default_factory=lambda: dict(FIRST_ID))

    def new_id(self, object_type: str) -> int:
        key = "engagements" if object_type in ENGAGEMENT_TYPES else object_type
        value = self.counters[key]
        self.counters[key] = value + 1
        return value

    def add(self, record: CrmRecord) -> CrmRecord:
        self.records[record.type][record.id] = record
        return record

    def owner_by_email(self, email: str) -> Owner | None:
        low = email.strip().lower()
        return next((o for o in self.owners.values() if o.email == low and not o.archived), None)


class _Grower:
    """One pass over the world; `generate_portal` is the API."""

    def __init__(self, world: World, extra_contacts: int, tie_size: int) -> None:
        self.world = world
        self.rng = random.Random(f"hubspot:{world.seed}")
        self.now_ms = int(world.now.timestamp() * 1000)
        self.data = PortalData()
        self.extra_contacts = extra_contacts
        self.tie_size = max(1, tie_size)
        self.companies: dict[str, int] = {}  # company name -> id
        self.contact_by_email: dict[str, int] = {}
        self.member_owner: dict[str, int] = {}
        self.contact_ids: list[int] = []

    def past(self, low_days: float, high_days: float) -> int:
        return self.now_ms - int(self.rng.uniform(low_days, high_days) * _DAY_MS)

    def record(self, object_type: str, props: dict[str, str | None], created: int, modified: int) -> CrmRecord:
        record_id = self.data.new_id(object_type)
        modified = max(created, modified)
        props = dict(props)
        props["hs_object_id"] = str(record_id)
        props[created_property(object_type)] = iso(created)
        record = CrmRecord(record_id, object_type, props, created, modified)
        record.stamp(modified)
        return self.data.add(record)

    def grow_owners(self) -> None:
        names = self.world.member_names
        emails = [*self.world.members, f"former.rep@{self.world.org_domain}"]
        for index, email in enumerate(emails):
            first, _, last = names.get(email, email.split("@")[0].title()).partition(" ")
            created = self.now_ms - 600 * _DAY_MS + index * 1000
            owner = Owner(
                id=self.data.new_id("owners"),
                email=email.lower(),
                first_name=first or None,
                last_name=last or None,
                user_id=9_000_001 + index,
                created_ms=created,
                updated_ms=created + _DAY_MS,
                archived=index == len(self.world.members),
            )
            self.data.owners[owner.id] = owner
            if not owner.archived:
                self.member_owner[owner.email] = owner.id

    def company_for(self, person: Person) -> int | None:
        if not person.company:
            return None
        if person.company not in self.companies:
            created = self.past(300, 700)
            props: dict[str, str | None] = {"name": person.company, "domain": person.company_domain}
            self.companies[person.company] = self.record("companies", props, created, self.past(0, 300)).id
        return self.companies[person.company]

    def contact_props(self, person: Person, email: str | None, company_id: int | None) -> dict[str, str | None]:
        rng = self.rng
        if email is not None and rng.random() < 0.01:
            email = email.replace("@", " at ")  # what a careless import leaves behind
        return {
            "email": email,
            "hs_additional_emails": ";".join(person.emails[1:]) or None,
            "firstname": person.first_name if rng.random() > 0.04 else None,
            "lastname": person.last_name if rng.random() > 0.02 else None,
            "phone": person.phone if rng.random() < 0.7 else None,
            "mobilephone": person.phone if rng.random() < 0.1 else None,
            "company": person.company if company_id is not None and rng.random() < 0.8 else None,
            "associatedcompanyid": str(company_id) if company_id is not None else None,
            "hs_merged_object_ids": None,
        }

    def add_contact(self, person: Person, email: str | None) -> CrmRecord:
        company_id = self.company_for(person)
        created = self.past(30, 600)
        record = self.record("contacts", self.contact_props(person, email, company_id), created, self.past(0, 30))
        if company_id is not None:
            record.associations["companies"] = {company_id}
        return record

    def grow_contacts(self) -> None:
        for person in self.world.people:
            if person.colleague:
                continue
            contact = self.add_contact(person, person.email)
            self.contact_by_email.setdefault(person.email.lower(), contact.id)
            if self.rng.random() < 0.06:  # entered twice: by the second address, or by phone only
                twin = self.add_contact(person, person.emails[1] if len(person.emails) > 1 else None)
                twin.properties["phone"] = person.phone
                if self.rng.random() < 0.5:
                    self.merge(contact, twin)

    def grow_bulk_contacts(self) -> None:
        """Synthetic contacts for volume tests, `tie_size` of them sharing each modification time."""
        base = self.now_ms - 10 * _DAY_MS
        for index in range(self.extra_contacts):
            modified = base + (index // self.tie_size) * 1000
            props: dict[str, str | None] = {
                "email": f"bulk{index}@bulk{index % 97}.example",
                "firstname": "Bulk",
                "lastname": f"Person {index}",
                "phone": None,
                "company": None,
            }
            self.record("contacts", props, base - _DAY_MS, modified)

    def merge(self, winner: CrmRecord, loser: CrmRecord) -> None:
        merged = [i for i in (winner.properties.get("hs_merged_object_ids") or "").split(";") if i]
        winner.properties["hs_merged_object_ids"] = ";".join([*merged, str(loser.id)])
        winner.stamp(max(winner.updated_ms, loser.updated_ms) + 1000)
        del self.data.records["contacts"][loser.id]
        self.data.merged_into[loser.id] = winner.id

    def owner_choice(self, member: str) -> str | None:
        r = self.rng.random()
        if r < 0.04:
            return None
        if r < 0.07:
            return str(next(o.id for o in self.data.owners.values() if o.archived))
        return str(self.member_owner[member])

    def engagement(self, object_type: str, member: str, when: int, props: dict[str, str | None]) -> CrmRecord:
        rng = self.rng
        props = {"hs_timestamp": iso(when) if rng.random() > 0.01 else None, **props}
        props["hubspot_owner_id"] = self.owner_choice(member)
        created = min(when, self.now_ms) - rng.randint(0, 5 * _DAY_MS)
        modified = min(self.now_ms, created + rng.randint(60_000, 2 * _DAY_MS))
        record = self.record(object_type, props, created, modified)
        count = 0 if rng.random() < 0.04 else 1 + int(rng.random() ** 3 * 3)
        record.associations["contacts"] = {rng.choice(self.contact_ids) for _ in range(count)}
        return record

    def grow_engagements(self) -> None:
        rng = self.rng
        members = list(self.world.members)
        self.contact_ids = list(self.data.records["contacts"])
        people = len(self.contact_ids)
        for _ in range(max(6, people // 3)):
            outcome = rng.choice(("COMPLETED", "COMPLETED", "COMPLETED", "NO_ANSWER", "BUSY"))
            props: dict[str, str | None] = {
                "hs_call_title": rng.choice(("Intro call", "Follow-up", "Pricing", "Check-in")),
                "hs_call_direction": rng.choice(("OUTBOUND", "INBOUND")),
                "hs_call_status": outcome,
                "hs_call_duration": str(rng.randint(20_000, 1_800_000)),
            }
            self.engagement("calls", rng.choice(members), self.past(0, _SPAN_DAYS), props)
        for _ in range(max(6, people // 4)):
            start = self.past(-20, _SPAN_DAYS)
            props = {
                "hs_meeting_title": rng.choice(("Demo", "Quarterly review", "Kick-off", "Lunch")),
                "hs_meeting_start_time": iso(start),
                "hs_meeting_end_time": iso(start + 1_800_000),
                "hs_meeting_outcome": "CANCELED" if rng.random() < 0.05 else rng.choice(("SCHEDULED", "COMPLETED")),
            }
            self.engagement("meetings", rng.choice(members), start, props)
        self.grow_logged_emails(max(6, people // 3))

    def sent_mail(self) -> Iterator[tuple[str, int, str, str, int]]:
        """(member, time ms, Message-ID, subject, contact id) of mail members sent to known contacts."""
        for member, messages in self.world.mailboxes.items():
            for message in messages:
                if "SENT" not in message.label_ids or message.message_id is None:
                    continue
                for _, address in getaddresses(message.header_values("To")):
                    contact = self.contact_by_email.get(address.lower())
                    if contact is not None:
                        subject = message.header("Subject") or ""
                        yield member, message.internal_date_ms, message.message_id, subject, contact
                        break

    def grow_logged_emails(self, count: int) -> None:
        rng = self.rng
        logged = [m for m in self.sent_mail() if rng.random() < 0.5][: count - count // 4]
        for member, when, message_id, subject, contact in logged:
            props: dict[str, str | None] = {
                "hs_email_direction": "EMAIL",
                "hs_email_status": "SENT",
                "hs_email_subject": subject,
                "hs_email_message_id": message_id,
            }
            record = self.engagement("emails", member, when, props)
            record.associations["contacts"] = {contact}
        members = list(self.world.members)
        for _ in range(max(0, count - len(logged))):  # logged by hand: no Message-ID
            props = {
                "hs_email_direction": rng.choice(("EMAIL", "INCOMING_EMAIL")),
                "hs_email_status": "SENT",
                "hs_email_subject": rng.choice(("Proposal", "Notes from today", "Next steps")),
                "hs_email_message_id": None,
            }
            self.engagement("emails", rng.choice(members), self.past(0, _SPAN_DAYS), props)

    def run(self) -> PortalData:
        self.grow_owners()
        self.grow_contacts()
        self.grow_engagements()
        self.grow_bulk_contacts()
        return self.data


def generate_portal(world: World, *, extra_contacts: int = 0, tie_size: int = 1) -> PortalData:
    """The same portal for the same world; `extra_contacts` synthetic contacts share times `tie_size` at a time."""
    return _Grower(world, extra_contacts, tie_size).run()
