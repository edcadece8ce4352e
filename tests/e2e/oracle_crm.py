"""Records and activities of the two CRM emulators, read from the rows they serve (Salesforce, HubSpot).

Decisions where DESIGN.md leaves room, each mirroring the product's documented behaviour
(connectors/salesforce*.py, connectors/hubspot*.py):

- People: Salesforce contacts and leads, HubSpot contacts; users and owners are the org's people, known
  by their email (a reference to a user that names no member is nobody). A record's company is its
  account's name (Salesforce contact), its `Company` (lead), its `company` text or else its associated
  company's name (HubSpot).
- Merges: a Salesforce row in the Recycle Bin with a MasterRecordId, and each id of a HubSpot winner's
  `hs_merged_object_ids`, is merged into the winner: its id is one more identity of the winner's person.
- Activities: Salesforce tasks of subtype Call (or with a CallType) are calls, of subtype Email logged
  emails, other to-dos nothing; a task is dated by its creation time when logged on its ActivityDate,
  else at midday UTC of that date. Salesforce events (not the child copies made for invitees) are
  meetings at their start. HubSpot calls, meetings (not CANCELED) and logged emails are activities at
  hs_timestamp (a meeting at its start), else at createdAt; a logged email with a Message-ID is the
  same activity as that email in a mailbox.
- A CRM meeting is a meeting (DESIGN.md's meeting rule): its owner organized it; its WhoId, associated
  contacts and invitees (people and users) attend, declined when their EventRelation says Declined.
- A logged email gives its owner an `email_out` with its contacts whatever its direction (DESIGN.md
  names no kind for logged emails; the product counts them as sent mail).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from sandbox.hubspot_data import CrmRecord, PortalData
from sandbox.salesforce_data import OrgData
from tests.e2e.oracle import normalize_address
from tests.e2e.oracle_model import Copy, Party, Record, message_id_key, parse_iso, phones_of, utc

SF_USER, SF_PEOPLE = "005", ("003", "00Q")


def _text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value).strip() or None


def _emails(values: Iterable[object]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for value in values:
        text = _text(value)
        email = normalize_address(text) if text else None
        if email is not None:
            found[email] = None
    return tuple(found)


# ---------------------------------------------------------------------------------------------- Salesforce


def salesforce_records(org: OrgData, holders: int) -> list[Record]:
    """Users, and live contacts and leads with what was merged into them."""
    records = org.records
    out = [
        Record(f"salesforce:user:{uid}", "user", _text(u.get("Name")), _emails([u.get("Email")]), holders=holders)
        for uid, u in records["User"].items()
    ]
    for sobject, kind in (("Contact", "contact"), ("Lead", "lead")):
        merged: dict[str, list[str]] = {}
        for rid, row in records[sobject].items():
            if row.get("IsDeleted") and row.get("MasterRecordId"):
                merged.setdefault(str(row["MasterRecordId"]), []).append(f"salesforce:{rid}")
        for rid, row in records[sobject].items():
            if row.get("IsDeleted"):
                continue
            account = records["Account"].get(str(row.get("AccountId") or ""), {})
            company = _text(account.get("Name")) if sobject == "Contact" else _text(row.get("Company"))
            out.append(
                Record(
                    f"salesforce:{rid}",
                    kind,
                    _text(row.get("Name")),
                    _emails([row.get("Email")]),
                    phones_of([row.get("Phone"), row.get("MobilePhone")]),
                    company,
                    tuple(sorted(merged.get(rid, ()))),
                    holders,
                )
            )
    return out


def _sf_party(record_id: object, role: str, declined: bool = False, *, users: bool, people: bool) -> Party | None:
    """A user (005…) or contact/lead (003…, 00Q…) id as a participant, if it is one of the kinds wanted."""
    rid = _text(record_id)
    if rid is not None and users and rid.startswith(SF_USER):
        return Party(role, f"ref:salesforce:user:{rid}", declined=declined)
    if rid is not None and people and rid.startswith(SF_PEOPLE):
        return Party(role, f"ref:salesforce:{rid}", declined=declined)
    return None


def _task_time(row: Mapping[str, Any]) -> datetime:
    created = utc(row["CreatedDate"])
    day = row.get("ActivityDate")
    if not isinstance(day, date) or created.date() == day:
        return created
    return datetime.combine(day, time(12, 0), UTC)


def _event_time(row: Mapping[str, Any]) -> datetime | None:
    for name in ("StartDateTime", "ActivityDateTime"):
        if isinstance(row.get(name), datetime):
            return utc(row[name])
    day = row.get("ActivityDate")
    return datetime.combine(day, time(), UTC) if isinstance(day, date) else None


def salesforce_copies(org: OrgData, connections: int) -> list[Copy]:
    """Calls, logged emails and meetings, one copy per connection that reads the org."""
    out: list[Copy] = []
    for rid, row in org.records["Task"].items():
        subtype = _text(row.get("TaskSubtype"))
        kind = "call" if subtype == "Call" or (subtype in (None, "Task") and _text(row.get("CallType"))) else None
        kind = "crm_email" if subtype == "Email" else kind
        if row.get("IsDeleted") or kind is None:
            continue
        owner = _sf_party(row.get("OwnerId"), "owner", users=True, people=False)
        who = _sf_party(row.get("WhoId"), "associated", users=False, people=True)
        parties = tuple(p for p in (owner, who) if p is not None)
        out += [Copy("salesforce", f"salesforce:{rid}", kind, _task_time(row), parties)] * connections
    relations: dict[str, list[Mapping[str, Any]]] = {}
    for rel in org.records["EventRelation"].values():
        if not rel.get("IsDeleted") and not rel.get("IsWhat"):
            relations.setdefault(str(rel.get("EventId")), []).append(rel)
    for rid, row in org.records["Event"].items():
        when = _event_time(row)
        if row.get("IsDeleted") or row.get("IsChild") or when is None:
            continue
        owner = _sf_party(row.get("OwnerId"), "organizer", users=True, people=False)
        attending: dict[str, Party] = {}
        invited = [_sf_party(row.get("WhoId"), "attendee", users=False, people=True)]
        invited += [
            _sf_party(r.get("RelationId"), "attendee", r.get("Status") == "Declined", users=True, people=True)
            for r in relations.get(rid, ())
        ]
        for person in invited:
            if person is not None:
                attending[person.who] = person  # the invitee row carries the answer
        parties = tuple([owner] if owner else []) + tuple(attending.values())
        out += [Copy("salesforce", f"salesforce:{rid}", "meeting", when, parties)] * connections
    return out


# ---------------------------------------------------------------------------------------------- HubSpot


def hubspot_records(portal: PortalData, holders: int) -> list[Record]:
    """Live owners and contacts (with the ids merged into them)."""
    out = [
        Record(
            f"hubspot:owner:{o.id}",
            "user",
            " ".join(p for p in (_text(o.first_name), _text(o.last_name)) if p) or None,
            _emails([o.email]),
            holders=holders,
        )
        for o in portal.owners.values()
        if not o.archived
    ]
    companies = portal.records.get("companies", {})
    for contact in portal.records["contacts"].values():
        if contact.archived:
            continue
        p = contact.properties
        additional = (_text(p.get("hs_additional_emails")) or "").split(";")
        company_id = _text(p.get("associatedcompanyid")) or ""
        associated = companies.get(int(company_id)) if company_id.isdigit() else None
        company = _text(p.get("company")) or (_text(associated.properties.get("name")) if associated else None)
        merged = [m for m in (_text(x) or "" for x in (_text(p.get("hs_merged_object_ids")) or "").split(";"))]
        out.append(
            Record(
                f"hubspot:{contact.id}",
                "contact",
                " ".join(x for x in (_text(p.get("firstname")), _text(p.get("lastname"))) if x) or None,
                _emails([p.get("email"), *additional]),
                phones_of([p.get("phone"), p.get("mobilephone")]),
                company,
                tuple(sorted({f"hubspot:{m}" for m in merged if m.isdigit() and m != str(contact.id)})),
                holders,
            )
        )
    return out


def _hubspot_time(record: CrmRecord, names: Iterable[str]) -> datetime:
    for name in names:
        found = parse_iso(record.properties.get(name))
        if found is not None:
            return found
    return datetime.fromtimestamp(record.created_ms / 1000, UTC)


def _hubspot_parties(record: CrmRecord, owner_role: str, contact_role: str) -> tuple[Party, ...]:
    owner = _text(record.properties.get("hubspot_owner_id"))
    parties = [Party(owner_role, f"ref:hubspot:owner:{owner}")] if owner and owner.isdigit() else []
    parties += [Party(contact_role, f"ref:hubspot:{c}") for c in sorted(record.associations.get("contacts", ()))]
    return tuple(parties)


def hubspot_copies(portal: PortalData, connections: int) -> list[Copy]:
    """Calls, meetings and logged emails, one copy per connection that reads the portal."""
    out: list[Copy] = []
    for record in portal.records["calls"].values():
        if not record.archived:
            when = _hubspot_time(record, ("hs_timestamp",))
            parties = _hubspot_parties(record, "owner", "associated")
            out += [Copy("hubspot", f"hubspot:call:{record.id}", "call", when, parties)] * connections
    for record in portal.records["meetings"].values():
        outcome = (_text(record.properties.get("hs_meeting_outcome")) or "").upper()
        if not record.archived and outcome != "CANCELED":
            when = _hubspot_time(record, ("hs_meeting_start_time", "hs_timestamp"))
            parties = _hubspot_parties(record, "organizer", "attendee")
            out += [Copy("hubspot", f"hubspot:meeting:{record.id}", "meeting", when, parties)] * connections
    for record in portal.records["emails"].values():
        if not record.archived:
            key = message_id_key(record.properties.get("hs_email_message_id")) or f"hubspot:email:{record.id}"
            when = _hubspot_time(record, ("hs_timestamp",))
            parties = _hubspot_parties(record, "owner", "associated")
            received = (_text(record.properties.get("hs_email_direction")) or "").upper() == "INCOMING_EMAIL"
            kind = "crm_email_in" if received else "crm_email"
            out += [Copy("hubspot", key, kind, when, parties)] * connections
    return out
