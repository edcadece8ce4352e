"""Hypothesis strategies over the corpus's shapes: provider records with awkward values in every field.

Each strategy builds a record shaped as the provider documents it, then lets any field be junk (a
wrong type, null, missing) so the mappers meet what a buggy or future API could send.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# header-ish text built from the characters address and encoded-word parsing care about
SPECIALS = st.text(alphabet='"(),;:<>@\\[]=?_ .\t\r\nabcXYZ09é🚀', max_size=40)
ENCODED_WORD = st.builds(
    lambda cs, enc, payload: f"=?{cs}?{enc}?{payload}?=",
    st.sampled_from(["utf-8", "UTF-8", "iso-8859-1", "x-unknown", "koi8-r", "utf-7", ""]),
    st.sampled_from(["q", "Q", "b", "B", "x"]),
    st.text(alphabet="=ABCDEFabcdef0123456789_+/", max_size=16),
)
MAILBOX = st.sampled_from(
    ["bob@example.com", "Bob <bob@example.com>", '"Doe, J" <j@x.test>', "ann@x.test (Ann)", "jörg@bücher.example"]
)
HEADER_TEXT = st.lists(st.one_of(SPECIALS, ENCODED_WORD, MAILBOX), max_size=6).map(" ".join) | st.text(max_size=60)
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20), st.just([]), st.just({})
)
DATE_TEXT = st.one_of(
    st.sampled_from(["Mon, 2 Mar 2026 10:00:00 +0100", "0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"]),
    st.datetimes().map(lambda d: d.isoformat()),
    st.builds(lambda d, off: d.isoformat() + off, st.datetimes(), st.sampled_from(["Z", "+14:00", "-12:00", "+05:45"])),
    st.text(max_size=30),
)
ZONE = st.sampled_from(
    ["UTC", "Europe/Berlin", "Europe", "Pacific Standard Time", "", "../x", "A" * 300, "tzone://Microsoft/Utc"]
)
ADDRESS = st.one_of(MAILBOX, SPECIALS, st.emails().map(str))


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The documented value most of the time, junk otherwise."""
    return st.one_of(value, value, value, JUNK)


def _record(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A record whose fields may each be absent."""
    return st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in fields.items()})


def gmail_messages() -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from(
        ["From", "To", "Cc", "Bcc", "Date", "Subject", "Message-ID", "List-Id", "Precedence", "from"]
    )
    header = st.fixed_dictionaries({"name": maybe(names), "value": maybe(st.one_of(HEADER_TEXT, DATE_TEXT))})
    return _record(
        {
            "id": st.text(min_size=1, max_size=8),
            "labelIds": st.lists(st.sampled_from(["INBOX", "SENT", "TRASH", "SPAM", "DRAFT", "Label_1"]), max_size=3),
            "internalDate": st.one_of(st.integers(-(10**15), 10**15).map(str), st.text(max_size=25)),
            "payload": st.fixed_dictionaries({"headers": st.lists(maybe(header), max_size=10)}),
        }
    )


def _event_time() -> st.SearchStrategy[dict[str, Any]]:
    return _record({"dateTime": DATE_TEXT, "date": st.dates().map(str) | st.text(max_size=12), "timeZone": ZONE})


def gcal_events() -> st.SearchStrategy[dict[str, Any]]:
    person = _record({"email": ADDRESS, "displayName": st.text(max_size=10), "resource": st.booleans(),
                      "responseStatus": st.sampled_from(["accepted", "declined"])})  # fmt: skip
    return _record(
        {
            "id": st.text(min_size=1, max_size=8),
            "status": st.sampled_from(["confirmed", "tentative", "cancelled"]),
            "eventType": st.sampled_from(["default", "outOfOffice", "focusTime", "fromGmail"]),
            "iCalUID": st.text(max_size=12),
            "recurringEventId": st.text(max_size=8),
            "originalStartTime": _event_time(),
            "start": _event_time(),
            "end": _event_time(),
            "organizer": person,
            "attendees": st.lists(maybe(person), max_size=5),
            "summary": HEADER_TEXT,
        }
    )


def people() -> st.SearchStrategy[dict[str, Any]]:
    value = _record({"value": st.one_of(ADDRESS, st.text(max_size=20))})
    return _record(
        {
            "resourceName": st.text(min_size=1, max_size=10),
            "metadata": _record({"deleted": st.booleans()}),
            "names": st.lists(maybe(_record({"displayName": st.text(max_size=10)})), max_size=3),
            "emailAddresses": st.lists(maybe(value), max_size=3),
            "phoneNumbers": st.lists(maybe(value), max_size=3),
            "organizations": st.lists(maybe(_record({"name": st.text(max_size=10)})), max_size=2),
        }
    )


def _graph_address() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"emailAddress": maybe(_record({"address": ADDRESS, "name": HEADER_TEXT}))})


def graph_messages() -> st.SearchStrategy[dict[str, Any]]:
    recipients = st.lists(maybe(_graph_address()), max_size=4)
    return _record(
        {
            "id": st.text(min_size=1, max_size=8),
            "@removed": st.just({"reason": "deleted"}),
            "isDraft": st.booleans(),
            "sentDateTime": DATE_TEXT,
            "receivedDateTime": DATE_TEXT,
            "internetMessageId": HEADER_TEXT,
            "subject": HEADER_TEXT,
            "from": _graph_address(),
            "sender": _graph_address(),
            "toRecipients": recipients,
            "ccRecipients": recipients,
            "internetMessageHeaders": st.lists(_record({"name": st.text(max_size=8), "value": st.text(max_size=8)})),
        }
    )


def graph_events() -> st.SearchStrategy[dict[str, Any]]:
    attendee = st.builds(lambda a, t: {**a, "type": t}, _graph_address(), st.sampled_from(["required", "resource"]))
    return _record(
        {
            "id": st.text(min_size=1, max_size=8),
            "isCancelled": st.booleans(),
            "iCalUId": st.text(max_size=12),
            "seriesMasterId": st.sampled_from(["master1", "other"]),
            "originalStart": DATE_TEXT,
            "start": _event_time(),
            "organizer": _graph_address(),
            "attendees": st.lists(maybe(attendee), max_size=4),
            "subject": HEADER_TEXT,
        }
    )


def graph_contacts() -> st.SearchStrategy[dict[str, Any]]:
    phones = st.one_of(st.lists(st.text(max_size=15), max_size=3), st.text(max_size=15))
    return _record(
        {
            "id": st.text(min_size=1, max_size=8),
            "displayName": st.text(max_size=10),
            "emailAddresses": st.lists(maybe(_record({"address": ADDRESS})), max_size=3),
            "businessPhones": phones,
            "mobilePhone": st.text(max_size=15),
            "homePhones": phones,
            "companyName": st.text(max_size=10),
        }
    )


def salesforce_rows() -> st.SearchStrategy[dict[str, Any]]:
    relation = _record({"RelationId": st.sampled_from(["003a", "005b", "001c"]), "IsWhat": st.booleans(),
                        "Status": st.sampled_from(["Accepted", "Declined"])})  # fmt: skip
    return _record(
        {
            "Id": st.text(min_size=1, max_size=8),
            "IsDeleted": st.booleans(),
            "Name": st.text(max_size=10),
            "Email": ADDRESS,
            "Phone": st.text(max_size=15),
            "Account": _record({"Name": st.text(max_size=10)}),
            "TaskSubtype": st.sampled_from(["Call", "Email", "Task", "ListEmail"]),
            "CallType": st.sampled_from(["Inbound", "Outbound"]),
            "ActivityDate": DATE_TEXT,
            "CreatedDate": DATE_TEXT,
            "StartDateTime": DATE_TEXT,
            "OwnerId": st.sampled_from(["005a", "00Gb"]),
            "WhoId": st.sampled_from(["003a", "00Qb", "001c"]),
            "EventRelations": _record({"records": st.lists(maybe(relation), max_size=3)}),
        }
    )


def hubspot_records() -> st.SearchStrategy[dict[str, Any]]:
    number = st.one_of(st.integers(0, 10**25).map(str), st.sampled_from(["²³", "١٢", "-5", "1e3"]), st.text(max_size=6))
    properties = _record(
        {
            "email": ADDRESS,
            "hs_additional_emails": st.lists(ADDRESS, max_size=3).map(";".join),
            "firstname": st.text(max_size=8),
            "phone": st.text(max_size=15),
            "hs_merged_object_ids": st.lists(number, max_size=3).map(";".join),
            "hs_timestamp": st.one_of(number, DATE_TEXT),
            "hs_meeting_start_time": DATE_TEXT,
            "hubspot_owner_id": number,
            "hs_meeting_outcome": st.sampled_from(["CANCELED", "COMPLETED"]),
            "hs_email_message_id": HEADER_TEXT,
        }
    )
    return _record(
        {"id": number, "email": ADDRESS, "properties": properties, "createdAt": st.one_of(number, DATE_TEXT)}
    )
