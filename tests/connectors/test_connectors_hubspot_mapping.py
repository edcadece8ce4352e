"""HubSpot record mapping (connectors.hubspot_mapping): nulls tolerated, unmappable records rejected."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import ActivityObservation, Deletion, Participant, PersonObservation
from connectors.hubspot_mapping import ENGAGEMENTS, Mapped, map_contact, map_engagement, map_owner, message_id


def contact(**props: Any) -> dict[str, Any]:
    return {"id": "101", "properties": props, "createdAt": "2026-01-01T00:00:00Z"}


def test_contact_ties_emails_and_phones_and_names_its_company() -> None:
    out = Mapped()
    record = contact(
        email=" Dana@Globex.TEST ",
        hs_additional_emails="dana.r@gmail.test;",
        phone="+1 415-555-0100",
        mobilephone="+1 415-555-0100",
        firstname="Dana",
        lastname=None,
        company=None,
        associatedcompanyid="5000001",
    )
    map_contact(record, {"5000001": "Globex"}, out)
    assert out.observations == [
        PersonObservation(
            "hubspot", "101", "Dana", ("dana@globex.test", "dana.r@gmail.test"), ("+1 415-555-0100",), "Globex"
        )
    ]
    assert out.rejections == []


def test_a_contact_of_nulls_is_still_a_record_activities_can_point_at() -> None:
    out = Mapped()
    map_contact({"id": "7", "properties": {k: None for k in ("email", "firstname", "phone")}}, {}, out)
    map_contact({"id": "8"}, {}, out)  # no properties at all
    assert [o.external_id for o in out.observations] == ["7", "8"]
    assert all(isinstance(o, PersonObservation) and o.emails == () and o.name is None for o in out.observations)


def test_a_broken_email_is_rejected_and_the_rest_kept() -> None:
    out = Mapped()
    map_contact(contact(email="dana at globex.test", phone="555-0100"), {}, out)
    (person,) = out.observations
    assert isinstance(person, PersonObservation) and person.phones == ("555-0100",) and person.emails == ()
    assert [(r.external_id, r.reason) for r in out.rejections] == [("101", "no_at")]


def test_merged_ids_become_merged_from_and_deletions() -> None:
    out = Mapped()
    map_contact(contact(email="a@b.test", hs_merged_object_ids="201;202; 202;x"), {}, out)
    person, *gone = out.observations
    assert isinstance(person, PersonObservation) and person.merged_from == ("201", "202")
    assert gone == [Deletion("hubspot", "201"), Deletion("hubspot", "202")]


def test_owner_is_a_user_record() -> None:
    out = Mapped()
    map_owner({"id": "42", "email": "Alice@Acme.test", "firstName": "Alice", "lastName": None}, out)
    map_owner({"id": None, "email": "x@y.test"}, out)
    assert out.observations == [PersonObservation("hubspot", "owner:42", "Alice", ("alice@acme.test",), kind="user")]
    assert [r.reason for r in out.rejections] == ["no_id"]


def test_call_is_owned_and_associated_by_reference() -> None:
    out = Mapped()
    record = {
        "id": "900",
        "properties": {"hs_timestamp": "2026-03-04T05:06:07.890Z", "hubspot_owner_id": "42", "hs_call_title": "Intro"},
    }
    map_engagement(ENGAGEMENTS["calls"], record, ["12", "3", "12"], out)
    (call,) = out.observations
    assert isinstance(call, ActivityObservation)
    assert (call.external_id, call.kind, call.dedupe_key) == ("call:900", "call", "hubspot:call:900")
    assert call.occurred_at == datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    assert call.participants == (
        Participant("owner", "", person_ref="hubspot:owner:42"),
        Participant("associated", "", person_ref="hubspot:3"),
        Participant("associated", "", person_ref="hubspot:12"),
    )
    assert call.subject == "Intro"


def test_null_owner_and_time_fall_back_and_no_time_at_all_is_rejected() -> None:
    out = Mapped()
    spec = ENGAGEMENTS["meetings"]
    map_engagement(spec, {"id": "1", "properties": {"hs_timestamp": None}, "createdAt": "1767225600000"}, [], out)
    map_engagement(spec, {"id": "2", "properties": {"hs_timestamp": "soon"}}, [], out)
    map_engagement(spec, {"id": "3", "properties": {"hs_meeting_outcome": "CANCELED"}}, [], out)
    first, gone = out.observations
    assert isinstance(first, ActivityObservation) and first.participants == ()
    assert first.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert gone == Deletion("hubspot", "meeting:3")
    assert [(r.external_id, r.reason) for r in out.rejections] == [("meeting:2", "no_timestamp")]


def test_logged_email_keyed_by_message_id_when_hubspot_has_it() -> None:
    out = Mapped()
    spec = ENGAGEMENTS["emails"]
    stamp = "2026-01-01T00:00:00Z"
    map_engagement(
        spec, {"id": "5", "properties": {"hs_timestamp": stamp, "hs_email_message_id": " <A.1@x.test> "}}, [], out
    )
    map_engagement(spec, {"id": "6", "properties": {"hs_timestamp": stamp, "hs_email_message_id": None}}, [], out)
    assert [o.dedupe_key for o in out.observations if isinstance(o, ActivityObservation)] == [
        "A.1@x.test",
        "hubspot:email:6",
    ]
    assert {o.kind for o in out.observations if isinstance(o, ActivityObservation)} == {"crm_email"}


@pytest.mark.parametrize(
    ("direction", "kind"),
    [("EMAIL", "crm_email"), ("FORWARDED_EMAIL", "crm_email"), ("INCOMING_EMAIL", "crm_email_in"), (None, "crm_email")],
)
def test_a_logged_emails_direction_decides_sent_or_received(direction: str | None, kind: str) -> None:
    out = Mapped()
    props = {"hs_timestamp": "2026-01-01T00:00:00Z", "hs_email_direction": direction}
    map_engagement(ENGAGEMENTS["emails"], {"id": "7", "properties": props}, ["9"], out)
    assert [o.kind for o in out.observations if isinstance(o, ActivityObservation)] == [kind]


def test_message_id_normalization() -> None:
    assert message_id("<abc@d.test>") == "abc@d.test"
    assert message_id("  abc@d.test ") == "abc@d.test"
    assert message_id("<>") is None
    assert message_id(None) is None


@given(st.dictionaries(st.text(max_size=20), st.one_of(st.none(), st.text(max_size=30), st.integers()), max_size=8))
def test_mapping_never_raises_on_odd_properties(props: dict[str, Any]) -> None:
    out = Mapped()
    map_contact({"id": "1", "properties": props}, {}, out)
    for spec in ENGAGEMENTS.values():
        map_engagement(spec, {"id": "2", "properties": props}, ["3"], out)
    map_owner({"id": "4", **props}, out)
    assert out.observations or out.rejections
