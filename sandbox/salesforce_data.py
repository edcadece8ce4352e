"""A deterministic Salesforce org grown from the shared World: the same people as in mail, as CRM records.

Users are the world's members; contacts and leads are its external people (some known by phone only,
some entered twice, a few of those already merged: the loser sits in the Recycle Bin with its
MasterRecordId); accounts are their companies; tasks (calls with durations, logged emails, plain to-dos)
and events (with invitees as EventRelations, and the child events Salesforce makes for invited users)
are owned by members.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sandbox.salesforce_schema import make_id
from sandbox.world import Person, World

Record = dict[str, Any]
ORG_ID = "00DSb0000000001AAA"


@dataclass
class OrgData:
    """Every record by object and id, when each deleted record was deleted, and the id counters."""

    records: dict[str, dict[str, Record]] = field(default_factory=lambda: defaultdict(dict))
    deleted_at: dict[str, datetime] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def new_id(self, sobject: str) -> str:
        self.counters[sobject] += 1
        return make_id(sobject, self.counters[sobject])


class _Grower:
    """One pass over the world's people; `generate_org` is the API."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.rng = random.Random(f"salesforce:{world.seed}")
        self.now = world.now
        self.org = OrgData()
        self.users: list[str] = []
        self.accounts: dict[str, str] = {}  # company name -> account id
        self.people: list[tuple[str, Person]] = []  # (record id, person) of live contacts and leads

    def stamp(self, record: Record, created: datetime, modified: datetime | None = None) -> None:
        record["CreatedDate"] = created
        record["LastModifiedDate"] = record["SystemModstamp"] = max(modified or created, created)

    def add(self, sobject: str, record: Record, created: datetime, modified: datetime | None = None) -> Record:
        record["Id"] = self.org.new_id(sobject)
        self.stamp(record, created, modified)
        if sobject != "User":
            record.setdefault("IsDeleted", False)
        self.org.records[sobject][record["Id"]] = record
        return record

    def past(self, low_days: float, high_days: float) -> datetime:
        when = self.now - timedelta(days=self.rng.uniform(low_days, high_days))
        return when.replace(microsecond=(when.microsecond // 1000) * 1000)

    def grow_users(self) -> None:
        for email in self.world.members:
            name = self.world.member_names.get(email, email.split("@")[0].title())
            first, _, last = name.partition(" ")
            user = {
                "Name": name, "FirstName": first, "LastName": last or first, "Email": email,
                "Username": f"{email}.crm", "IsActive": True, "UserType": "Standard",
            }  # fmt: skip
            self.users.append(self.add("User", user, self.now - timedelta(days=500))["Id"])

    def account_for(self, person: Person) -> str | None:
        if not person.company or person.company_domain in ("",):
            return None
        if person.company not in self.accounts:
            account = {
                "Name": person.company, "Website": f"https://www.{person.company_domain}",
                "OwnerId": self.rng.choice(self.users), "MasterRecordId": None,
            }  # fmt: skip
            self.accounts[person.company] = self.add("Account", account, self.past(380, 460))["Id"]
        return self.accounts[person.company]

    def person_fields(self, person: Person, *, email: str | None) -> Record:
        rng = self.rng
        return {
            "FirstName": person.first_name,
            "LastName": person.last_name,
            "Name": person.name,
            "Email": email,
            "Phone": person.phone if rng.random() < 0.8 or email is None else None,
            "MobilePhone": person.phone if rng.random() < 0.1 else None,
            "OwnerId": rng.choice(self.users),
            "MasterRecordId": None,
        }

    def grow_people(self) -> None:
        rng = self.rng
        for person in (p for p in self.world.people if not p.colleague):
            draw = rng.random()
            if draw >= 0.8:
                continue
            email = None if rng.random() < 0.1 else person.emails[0]
            created = self.past(200, 420)
            fields = self.person_fields(person, email=email)
            if draw < 0.55:
                fields["AccountId"] = self.account_for(person)
                contact = self.add("Contact", fields, created, self.past(1, 190))
                self.people.append((contact["Id"], person))
                if rng.random() < 0.12:
                    self.duplicate(contact, person)
            else:
                fields |= {"Company": person.company or f"{person.last_name} (individual)", "Status": "Open",
                           "IsConverted": False, "ConvertedContactId": None}  # fmt: skip
                lead = self.add("Lead", fields, created, self.past(1, 190))
                self.people.append((lead["Id"], person))

    def duplicate(self, original: Record, person: Person) -> None:
        """The same person entered again; a third of these are merged already, the rest wait."""
        rng = self.rng
        email = person.emails[-1] if rng.random() < 0.5 else original["Email"]
        fields = self.person_fields(person, email=email) | {"AccountId": original.get("AccountId")}
        dupe = self.add("Contact", fields, self.past(100, 190), self.past(20, 99))
        if rng.random() < 1 / 3:
            when = self.past(1, 10)  # inside the Recycle Bin's 15 days: queryAll still returns the loser
            dupe |= {"IsDeleted": True, "MasterRecordId": original["Id"]}
            self.stamp(dupe, dupe["CreatedDate"], when)
            self.org.deleted_at[dupe["Id"]] = when
            self.stamp(original, original["CreatedDate"], max(original["SystemModstamp"], when))
        else:
            self.people.append((dupe["Id"], person))

    def grow_activities(self) -> None:
        rng = self.rng
        for who, person in self.people:
            account = self.org.records["Contact"].get(who, {}).get("AccountId")
            for _ in range(rng.choice((0, 1, 1, 2, 3))):
                self.task(who, person, account, "Call")
            for _ in range(rng.choice((0, 0, 1, 2))):
                self.task(who, person, account, "Email")
            if rng.random() < 0.3:
                self.task(who, person, account, "Task")
            if rng.random() < 0.35:
                self.event(who, person, account)

    def task(self, who: str, person: Person, account: str | None, subtype: str) -> None:
        rng = self.rng
        created = self.past(1, 360)
        call = subtype == "Call"
        record: Record = {
            "Subject": {"Call": f"Call with {person.first_name}", "Email": f"Email: {person.company or 'hello'}",
                        "Task": "Send proposal"}[subtype],
            "TaskSubtype": subtype,
            "CallType": rng.choice(("Outbound", "Outbound", "Inbound")) if call else None,
            "CallDurationInSeconds": rng.randint(20, 2400) if call and rng.random() < 0.9 else None,
            "ActivityDate": created.date() if rng.random() < 0.95 else None,
            "Status": "Completed",
            "OwnerId": rng.choice(self.users),
            "WhoId": who if rng.random() < 0.96 else None,
            "WhatId": account,
        }  # fmt: skip
        self.add("Task", record, created)

    def event(self, who: str, person: Person, account: str | None) -> None:
        rng = self.rng
        created = self.past(5, 360)
        all_day = rng.random() < 0.05
        start = (created + timedelta(days=rng.randint(1, 4))).replace(minute=0, second=0, microsecond=0)
        if all_day:
            start = start.replace(hour=0)
        minutes = 1440 if all_day else rng.choice((30, 30, 45, 60))
        owner = rng.choice(self.users)
        event = self.add("Event", {
            "Subject": f"Meeting with {person.company or person.name}", "StartDateTime": start,
            "EndDateTime": start + timedelta(minutes=minutes), "ActivityDate": start.date(),
            "ActivityDateTime": None if all_day else start, "IsAllDayEvent": all_day, "DurationInMinutes": minutes,
            "IsChild": False, "OwnerId": owner, "WhoId": who, "WhatId": account,
        }, created)  # fmt: skip
        self.relation(event["Id"], who, created, invitee=False, status=None)
        for other, _ in rng.sample(self.people, min(len(self.people), rng.choice((0, 0, 1, 2)))):
            if other != who:
                self.relation(event["Id"], other, created, invitee=True, status=self.response())
        if len(self.users) > 1 and rng.random() < 0.3:
            colleague = rng.choice([u for u in self.users if u != owner])
            self.relation(event["Id"], colleague, created, invitee=True, status=self.response())
            child = {k: v for k, v in event.items() if k not in ("Id", "CreatedDate", "LastModifiedDate",
                                                                   "SystemModstamp")}  # fmt: skip
            self.add("Event", child | {"IsChild": True, "OwnerId": colleague}, created)

    def response(self) -> str:
        return self.rng.choice(("New", "Accepted", "Accepted", "Declined"))

    def relation(
        self, event_id: str, relation_id: str, created: datetime, *, invitee: bool, status: str | None
    ) -> None:
        self.add("EventRelation", {
            "EventId": event_id, "RelationId": relation_id, "IsInvitee": invitee, "IsParent": not invitee,
            "IsWhat": False, "Status": status,
        }, created)  # fmt: skip

    def run(self) -> OrgData:
        self.grow_users()
        self.grow_people()
        self.grow_activities()
        return self.org


def generate_org(world: World) -> OrgData:
    """The same org for the same world."""
    return _Grower(world).run()
