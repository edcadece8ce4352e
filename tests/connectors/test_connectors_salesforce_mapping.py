"""Salesforce rows to observations without HTTP: null fields, odd dates, invitees, and never a crash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectors.base import ActivityObservation, Deletion, Participant, PersonObservation, Rejection
from connectors.salesforce_mapping import Mapped, map_event, map_person, map_task
from connectors.salesforce_soql import id_list, stream_query

CONTACT = "003Sb0000000001AAA"
LEAD = "00QSb0000000001AAA"
USER = "005Sb0000000001AAA"


def person(row: dict[str, Any], kind: str = "contact") -> Mapped:
    out = Mapped()
    map_person(row, kind, out)
    return out


def test_a_contact_with_every_field_null_is_still_a_person() -> None:
    row = {"Id": CONTACT, "Name": None, "Email": None, "Phone": None, "MobilePhone": None, "AccountId": None,
           "Account": None, "MasterRecordId": None, "IsDeleted": False, "SystemModstamp": None}  # fmt: skip
    out = person(row)
    assert out.observations == [PersonObservation("salesforce", CONTACT, None, kind="contact")]
    assert out.rejections == []


def test_contact_fields_are_mapped_and_a_bad_email_is_a_rejection_beside_the_person() -> None:
    out = person({"Id": CONTACT, "Name": " Dana Reyes ", "Email": "dana@", "Phone": "(415) 555-0100",
                  "MobilePhone": "(415) 555-0100", "Account": {"attributes": {}, "Name": "Globex"}})  # fmt: skip
    assert out.observations == [
        PersonObservation("salesforce", CONTACT, "Dana Reyes", (), ("(415) 555-0100",), "Globex", kind="contact")
    ]
    assert [(r.external_id, r.reason) for r in out.rejections] == [(CONTACT, "bad_address")]
    assert "dana@" not in out.rejections[0].detail


def test_users_and_leads_and_deletions() -> None:
    user = person({"Id": USER, "Name": "Alice", "Email": "Alice@Acme.test"}, "user").observations[0]
    assert user == PersonObservation("salesforce", f"user:{USER}", "Alice", ("alice@acme.test",), kind="user")
    lead = person({"Id": LEAD, "Company": "Initech", "Email": "bo@initech.test"}, "lead").observations[0]
    assert isinstance(lead, PersonObservation) and lead.company == "Initech" and lead.kind == "lead"
    assert person({"Id": LEAD, "IsDeleted": True}, "lead").observations == [Deletion("salesforce", LEAD)]
    assert [r.reason for r in person({"Name": "No Id"}).rejections] == ["no_id"]


def task(row: dict[str, Any]) -> Mapped:
    out = Mapped()
    map_task(row, out)
    return out


def test_calls_and_logged_emails() -> None:
    row = {"Id": "00TSb0000000001AAA", "TaskSubtype": "Call", "CallDurationInSeconds": None, "Subject": "Call",
           "ActivityDate": "2026-03-02", "CreatedDate": "2026-03-02T15:04:05.000+0000", "OwnerId": USER,
           "WhoId": LEAD}  # fmt: skip
    call = task(row).observations[0]
    assert isinstance(call, ActivityObservation) and call.kind == "call" and call.subject == "Call"
    assert call.occurred_at == datetime(2026, 3, 2, 15, 4, 5, tzinfo=UTC)
    assert call.participants == (
        Participant("owner", "", person_ref=f"salesforce:user:{USER}"),
        Participant("associated", "", person_ref=f"salesforce:{LEAD}"),
    )
    backdated = task(row | {"ActivityDate": "2026-02-27"}).observations[0]
    assert isinstance(backdated, ActivityObservation) and backdated.occurred_at == datetime(2026, 2, 27, 12, tzinfo=UTC)
    legacy = task(row | {"TaskSubtype": None, "CallType": "Inbound"}).observations[0]
    assert isinstance(legacy, ActivityObservation) and legacy.kind == "call"
    email = task(row | {"TaskSubtype": "Email", "WhoId": None, "OwnerId": None}).observations[0]
    assert isinstance(email, ActivityObservation) and email.kind == "crm_email" and email.participants == ()
    assert task(row | {"TaskSubtype": "Task"}).observations == []
    undated = task(row | {"ActivityDate": None, "CreatedDate": "yesterday"})
    assert undated.observations == [] and [r.reason for r in undated.rejections] == ["no_date"]
    assert task(row | {"IsDeleted": True}).observations == [Deletion("salesforce", "00TSb0000000001AAA")]


def test_a_meeting_is_organized_by_its_owner_and_attended_by_its_who_and_invitees_once() -> None:
    relations = [
        {"RelationId": CONTACT, "Status": None, "IsInvitee": False, "IsWhat": False},
        {"RelationId": LEAD, "Status": "Declined", "IsInvitee": True, "IsWhat": False},
        {"RelationId": "005Sb0000000002AAA", "Status": "Accepted", "IsInvitee": True, "IsWhat": False},
        {"RelationId": "001Sb0000000001AAA", "Status": None, "IsInvitee": False, "IsWhat": True},
        {"RelationId": None},
    ]
    out = Mapped()
    map_event({"Id": "00USb0000000001AAA", "StartDateTime": None, "ActivityDate": "2026-05-01", "OwnerId": USER,
               "WhoId": CONTACT, "EventRelations": {"records": relations}}, out)  # fmt: skip
    meeting = out.observations[0]
    assert isinstance(meeting, ActivityObservation) and meeting.kind == "meeting"
    assert meeting.occurred_at == datetime(2026, 5, 1, tzinfo=UTC)
    assert [(p.role, p.person_ref, p.declined) for p in meeting.participants] == [
        ("organizer", f"salesforce:user:{USER}", False),
        ("attendee", f"salesforce:{CONTACT}", False),
        ("attendee", f"salesforce:{LEAD}", True),
        ("attendee", "salesforce:user:005Sb0000000002AAA", False),
    ]


def test_queries_only_take_real_ids() -> None:
    assert id_list([CONTACT, "x' OR Name != '"]) == f"('{CONTACT}')"
    assert "IsChild = false" in stream_query("events") and "ORDER BY SystemModstamp ASC, Id ASC" in stream_query(
        "users"
    )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10,
)
_keys = st.sampled_from(
    ["Id", "Name", "Email", "Phone", "MobilePhone", "Account", "Company", "IsDeleted", "TaskSubtype", "CallType",
     "ActivityDate", "CreatedDate", "StartDateTime", "OwnerId", "WhoId", "EventRelations", "Subject"]
)  # fmt: skip


@given(st.dictionaries(_keys, _json | st.just(CONTACT) | st.just("2026-01-01T00:00:00.000+0000")))
def test_any_row_maps_or_is_rejected_never_raises(row: dict[str, Any]) -> None:
    out = Mapped()
    map_person(row, "contact", out)
    map_task(row, out)
    map_event(row, out)
    assert all(isinstance(o, (PersonObservation, ActivityObservation, Deletion)) for o in out.observations)
    assert all(isinstance(r, Rejection) for r in out.rejections)
