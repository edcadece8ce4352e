"""The SOQL each stream sends: its object, the fields it reads, and the SystemModstamp window.

Rows come ordered by (SystemModstamp, Id), so a pass can always resume at its high-water mark.
Ids put into a query are checked to be Salesforce ids first: nothing from a record is pasted in raw.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

OBJECTS: dict[str, str] = {
    "users": "User",
    "accounts": "Account",
    "contacts": "Contact",
    "leads": "Lead",
    "tasks": "Task",
    "events": "Event",
}
_PERSON = ("Id", "Name", "Email", "Phone", "MobilePhone")
FIELDS: dict[str, tuple[str, ...]] = {
    # User has no IsDeleted (users are deactivated, never deleted) and is not merged
    "users": ("Id", "Name", "Email", "SystemModstamp"),
    "accounts": ("Id", "Name", "Website", "IsDeleted", "SystemModstamp"),
    "contacts": (*_PERSON, "AccountId", "Account.Name", "MasterRecordId", "IsDeleted", "SystemModstamp"),
    "leads": (*_PERSON, "Company", "MasterRecordId", "IsDeleted", "SystemModstamp"),
    "tasks": (
        "Id", "Subject", "TaskSubtype", "CallType", "CallDurationInSeconds", "ActivityDate", "CreatedDate",
        "OwnerId", "WhoId", "WhatId", "IsDeleted", "SystemModstamp",
    ),
    "events": (
        "Id", "Subject", "StartDateTime", "ActivityDateTime", "ActivityDate", "IsAllDayEvent", "OwnerId", "WhoId",
        "WhatId", "IsDeleted", "SystemModstamp", "(SELECT RelationId, Status, IsInvitee, IsWhat FROM EventRelations)",
    ),
}  # fmt: skip
# child events are the copies Salesforce makes in each invited user's calendar: the parent has them all.
# Tasks: only logged calls and emails are interactions (salesforce_mapping._task_kind), so to-dos, list
# emails, cadence and LinkedIn steps are never fetched. TaskSubtype cannot be changed after creation, so
# a deleted call or email still matches (queryAll returns it with IsDeleted); `CallType != null` keeps
# calls logged with the generic subtype (null or Task), which the mapper counts as calls too.
TASK_FILTER = "(TaskSubtype IN ('Call', 'Email') OR CallType != null)"
STATIC_FILTERS: dict[str, str] = {"events": "IsChild = false", "tasks": TASK_FILTER}
ORDER = " ORDER BY SystemModstamp ASC, Id ASC"
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def literal(when: datetime) -> str:
    """A SOQL dateTime literal in UTC, to the second (lookback and >= cover the rest)."""
    value = when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def id_list(ids: Iterable[str]) -> str:
    """A SOQL IN list of record ids; ValueError for anything that is not an id."""
    checked = [i for i in ids if _ID.match(i)]
    if not checked:
        raise ValueError("no valid ids")
    return "(" + ", ".join(f"'{i}'" for i in checked) + ")"


def stream_query(stream: str, *, after: datetime | None = None, at_least: datetime | None = None) -> str:
    """The stream's query: every row (a full pass), rows modified after `after`, or from `at_least` on."""
    clauses = [STATIC_FILTERS[stream]] if stream in STATIC_FILTERS else []
    if after is not None:
        clauses.append(f"SystemModstamp > {literal(after)}")
    if at_least is not None:
        clauses.append(f"SystemModstamp >= {literal(at_least)}")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT {', '.join(FIELDS[stream])} FROM {OBJECTS[stream]}{where}{ORDER}"  # noqa: S608 constants only


def by_ids(stream: str, ids: Iterable[str]) -> str:
    """The stream's fields for a handful of records by id (merge winners)."""
    return f"SELECT {', '.join(FIELDS[stream])} FROM {OBJECTS[stream]} WHERE Id IN {id_list(ids)}"  # noqa: S608 ids checked


def contacts_of_accounts(account_ids: Iterable[str]) -> str:
    """Live contacts of some accounts (to carry a renamed account's name to its contacts)."""
    fields = ", ".join(FIELDS["contacts"])
    return f"SELECT {fields} FROM Contact WHERE AccountId IN {id_list(account_ids)}"  # noqa: S608 ids checked


def newest_account() -> str:
    """The most recently modified account: where an accounts pass starts watching renames."""
    return "SELECT Id, SystemModstamp FROM Account ORDER BY SystemModstamp DESC, Id DESC LIMIT 1"
