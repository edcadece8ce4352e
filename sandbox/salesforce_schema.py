"""The emulated org's objects: fields and their types, key prefixes, parent and child relationships.

Only what the connector and tests touch; a field not listed is an INVALID_FIELD, as on a real org.
"""

from __future__ import annotations

from typing import Literal

FieldType = Literal["id", "string", "datetime", "date", "boolean", "int"]

_AUDIT: dict[str, FieldType] = {
    "CreatedDate": "datetime",
    "LastModifiedDate": "datetime",
    "SystemModstamp": "datetime",
}
_DELETABLE: dict[str, FieldType] = {"IsDeleted": "boolean", **_AUDIT}

OBJECTS: dict[str, dict[str, FieldType]] = {
    # User has no IsDeleted: users are deactivated, never deleted
    "User": {
        "Id": "id", "Name": "string", "FirstName": "string", "LastName": "string", "Email": "string",
        "Username": "string", "IsActive": "boolean", "UserType": "string", **_AUDIT,
    },
    "Account": {
        "Id": "id", "Name": "string", "Website": "string", "OwnerId": "id", "MasterRecordId": "id", **_DELETABLE,
    },
    "Contact": {
        "Id": "id", "Name": "string", "FirstName": "string", "LastName": "string", "Email": "string",
        "Phone": "string", "MobilePhone": "string", "AccountId": "id", "OwnerId": "id", "MasterRecordId": "id",
        **_DELETABLE,
    },
    "Lead": {
        "Id": "id", "Name": "string", "FirstName": "string", "LastName": "string", "Email": "string",
        "Phone": "string", "MobilePhone": "string", "Company": "string", "Status": "string",
        "IsConverted": "boolean", "ConvertedContactId": "id", "OwnerId": "id", "MasterRecordId": "id", **_DELETABLE,
    },
    "Task": {
        "Id": "id", "Subject": "string", "TaskSubtype": "string", "CallType": "string",
        "CallDurationInSeconds": "int", "ActivityDate": "date", "Status": "string", "OwnerId": "id",
        "WhoId": "id", "WhatId": "id", **_DELETABLE,
    },
    "Event": {
        "Id": "id", "Subject": "string", "StartDateTime": "datetime", "EndDateTime": "datetime",
        "ActivityDate": "date", "ActivityDateTime": "datetime", "IsAllDayEvent": "boolean",
        "DurationInMinutes": "int", "IsChild": "boolean", "OwnerId": "id", "WhoId": "id", "WhatId": "id",
        **_DELETABLE,
    },
    "EventRelation": {
        "Id": "id", "EventId": "id", "RelationId": "id", "IsInvitee": "boolean", "IsParent": "boolean",
        "IsWhat": "boolean", "Status": "string", **_DELETABLE,
    },
}  # fmt: skip

KEY_PREFIX = {
    "User": "005", "Account": "001", "Contact": "003", "Lead": "00Q", "Task": "00T", "Event": "00U",
    "EventRelation": "0RE",
}  # fmt: skip

# (object, relationship name) -> (lookup field, parent object)
PARENTS: dict[tuple[str, str], tuple[str, str]] = {
    ("Contact", "Account"): ("AccountId", "Account"),
    ("Contact", "Owner"): ("OwnerId", "User"),
    ("Lead", "Owner"): ("OwnerId", "User"),
    ("Account", "Owner"): ("OwnerId", "User"),
    ("Task", "Owner"): ("OwnerId", "User"),
    ("Event", "Owner"): ("OwnerId", "User"),
}

# restricted picklists (a value outside the list is refused on create and update; null is allowed)
RESTRICTED_PICKLISTS: dict[tuple[str, str], frozenset[str]] = {
    ("Task", "TaskSubtype"): frozenset({"Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"}),
}
# fields set when a record is created and never updateable afterwards (Task.TaskSubtype: "Create", no "Update")
CREATE_ONLY: frozenset[tuple[str, str]] = frozenset({("Task", "TaskSubtype")})

# (object, child relationship name) -> (child object, its lookup field to the parent)
CHILDREN: dict[tuple[str, str], tuple[str, str]] = {
    ("Event", "EventRelations"): ("EventRelation", "EventId"),
}


def canonical_object(name: str) -> str | None:
    """The object's API name in its canonical case (SOQL names are case-insensitive), or None."""
    low = name.lower()
    return next((o for o in OBJECTS if o.lower() == low), None)


def canonical_field(sobject: str, name: str) -> str | None:
    """The field's API name on `sobject` in canonical case, or None."""
    low = name.lower()
    return next((f for f in OBJECTS[sobject] if f.lower() == low), None)


def object_of_id(record_id: str) -> str | None:
    """Which object an id belongs to, from its three-character key prefix."""
    return next((o for o, p in KEY_PREFIX.items() if record_id.startswith(p)), None)


def make_id(sobject: str, n: int) -> str:
    """A deterministic 18-character id of `sobject` (prefix, pod, counter, suffix)."""
    return f"{KEY_PREFIX[sobject]}Sb{n:010d}AAA"
