"""One focused test per product bug the corpus found (issue 7, B1), so each fix stays fixed on its own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.addresses import parse_address_list
from connectors.base import ActivityObservation, PersonObservation
from connectors.dates import named_zone
from connectors.encoded_words import decode_header_text
from connectors.gcal_mapping import event_time as gcal_event_time
from connectors.gcal_mapping import map_event as gcal_map_event
from connectors.hubspot_mapping import ENGAGEMENTS, Mapped, map_engagement
from connectors.hubspot_mapping import map_contact as map_contact_hubspot
from connectors.hubspot_scan import epoch_ms
from connectors.outlook_calendar_mapping import event_time as outlook_event_time
from connectors.outlook_calendar_mapping import map_event as outlook_map_event
from connectors.outlook_contacts import map_contact
from connectors.outlook_mail_mapping import parse_time as outlook_parse_time
from connectors.people_mapping import map_person
from connectors.salesforce_mapping import parse_datetime as salesforce_parse_datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_thousands_of_nested_comments_are_refused_not_a_recursion_error() -> None:
    result = parse_address_list("(" * 3000 + ")" * 3000 + " ann@x.test, ben@y.test")
    assert [a.email for a in result.addresses] == ["ben@y.test"]
    assert [b.reason for b in result.rejected] == ["too_complex"]


def test_an_entry_of_only_comments_is_empty_not_rejected() -> None:
    result = parse_address_list("(Empty list)(start)Undisclosed recipients  :(nobody(I know))")
    assert result.addresses == () and result.rejected == ()


def test_a_character_split_across_adjacent_encoded_words_is_decoded_whole() -> None:
    assert decode_header_text("=?utf-8?q?caf=C3?= =?utf-8?q?=A9?=") == "café"
    assert decode_header_text("=?UTF-8?B?8J+a?= =?utf-8?B?gA==?= go") == "🚀 go"
    assert decode_header_text("=?utf-8?q?a?= =?iso-8859-1?q?=E9?=") == "aé"  # different charsets: decoded apart


def test_a_naive_calendar_time_is_read_in_its_named_zone() -> None:
    assert gcal_event_time({"dateTime": "2026-03-02T10:00:00", "timeZone": "America/New_York"}) == datetime(
        2026, 3, 2, 15, 0, tzinfo=UTC
    )
    assert gcal_event_time({"dateTime": "2026-03-02T10:00:00"}) is None


@pytest.mark.parametrize("zone", ["Europe", "A" * 300, "../../etc/passwd"])
def test_a_zone_name_that_is_a_directory_or_too_long_is_no_zone_not_an_os_error(zone: str) -> None:
    assert named_zone(zone) is None
    assert outlook_event_time({"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": zone}) is None
    assert gcal_event_time({"dateTime": "2026-03-02T10:00:00", "timeZone": zone}) is None


def test_graph_utc_zone_spelling_is_utc() -> None:
    moment = outlook_event_time({"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": "tzone://Microsoft/Utc"})
    assert moment == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])
def test_times_beyond_utc_range_are_unreadable_not_an_overflow(value: str) -> None:
    assert gcal_event_time({"dateTime": value}) is None
    assert outlook_parse_time(value) is None
    assert salesforce_parse_datetime(value) is None


def test_odd_types_in_repeated_fields_are_ignored_not_a_type_error() -> None:
    person = map_person(
        {"resourceName": "people/1", "names": 5, "phoneNumbers": [{"value": "+16502530000"}]}, "contact"
    )
    assert isinstance(person.observation, PersonObservation) and person.observation.name is None
    event, _ = outlook_map_event(
        {"id": "e", "iCalUId": "u", "start": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}, "attendees": 5}, {}
    )
    assert isinstance(event, ActivityObservation) and event.participants == ()
    mapped = gcal_map_event("c", {"id": "e", "eventType": [], "start": {"date": "2026-03-02"}, "iCalUID": "u"}, EPOCH)
    assert isinstance(mapped.observation, ActivityObservation)


def test_outlook_contact_phone_and_address_fields_of_the_wrong_shape() -> None:
    person, rejected = map_contact(
        {"id": "c", "businessPhones": "+1 650 253 0000", "homePhones": 5, "emailAddresses": 7}
    )
    assert person.phones == ("+1 650 253 0000",) and person.emails == () and rejected == []


@pytest.mark.parametrize("stamp", ["99999999999999999999", "²³"])
def test_an_unreadable_hubspot_timestamp_falls_back_to_created_at(stamp: str) -> None:
    assert epoch_ms("²³") is None
    out = Mapped()
    record = {"id": "5", "properties": {"hs_timestamp": stamp}, "createdAt": "2026-03-01T00:00:00Z"}
    map_engagement(ENGAGEMENTS["calls"], record, [], out)
    assert [o.occurred_at for o in out.observations if isinstance(o, ActivityObservation)] == [
        datetime(2026, 3, 1, tzinfo=UTC)
    ]


def test_a_hubspot_id_of_digit_like_characters_is_no_id() -> None:
    out = Mapped()
    map_contact_hubspot({"id": "²", "properties": {"email": "a@x.test"}}, {}, out)
    assert out.observations == [] and [r.reason for r in out.rejections] == ["no_id"]


def test_digit_like_hubspot_company_ids_are_skipped_and_tie_run_ids_refused_not_a_value_error() -> None:
    from connectors.base import ConnectorError
    from connectors.hubspot_names import named_companies
    from connectors.hubspot_scan import Scan, step

    contacts = [{"id": "1", "properties": {"associatedcompanyid": c}} for c in ("²", "7")]
    assert named_companies(contacts) == ["7"]
    tied = [{"id": i, "properties": {"lastmodifieddate": "1000"}} for i in ("5", "²")]
    with pytest.raises(ConnectorError, match="out of id order"):  # a search answer that breaks the walk's order
        step(Scan(anchor=1000, ties_after=""), lambda query: tied, "lastmodifieddate", ())


def test_a_windows_zone_name_from_graph_is_read_as_its_iana_zone() -> None:
    pacific = {"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": "Pacific Standard Time"}
    assert outlook_event_time(pacific) == datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    berlin = {"dateTime": "2026-07-02T10:00:00.0000000", "timeZone": "W. Europe Standard Time"}
    assert outlook_event_time(berlin) == datetime(2026, 7, 2, 8, 0, tzinfo=UTC)  # summer time
    assert named_zone("Not A Real Standard Time") is None
