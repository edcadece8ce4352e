"""The Calendar v3 emulator, driven over HTTP by google-api-python-client as Google's own clients would."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import google_auth_httplib2
import httplib2
import pytest
import requests
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from sandbox import Sandbox
from sandbox.gcal_data import HOLIDAYS_ID
from sandbox.gcal_model import Attendee, When
from tests.sandbox.sandbox_helpers import connect

ALICE = "alice@acme.test"
CALENDAR_READ = "https://www.googleapis.com/auth/calendar.readonly"


def calendar(sb: Sandbox, login: str = ALICE, scopes: str = CALENDAR_READ) -> Any:
    token = connect(sb, login, scopes)["access_token"]
    http = google_auth_httplib2.AuthorizedHttp(
        Credentials(token),  # type: ignore[no-untyped-call]
        http=httplib2.Http(timeout=10),
        refresh_status_codes=(),
    )
    endpoint = sb.google_settings()["GOOGLE_API_URL"] + "calendar/v3/"
    return build("calendar", "v3", http=http, static_discovery=True, client_options={"api_endpoint": endpoint})


def list_all(cal: Any, **args: Any) -> tuple[list[dict[str, Any]], str, int]:
    """Every item of an events.list walk, its nextSyncToken and the number of pages."""
    items: list[dict[str, Any]] = []
    page_token, pages = None, 0
    while True:
        page = cal.events().list(pageToken=page_token, **args).execute()
        pages += 1
        items += page.get("items", [])
        page_token = page.get("nextPageToken")
        if not page_token:
            return items, page["nextSyncToken"], pages


def test_calendar_list_holds_the_primary_owned_and_subscribed_calendars(sb: Sandbox) -> None:
    cal = calendar(sb)
    entries = {e["id"]: e for e in cal.calendarList().list().execute()["items"]}
    assert entries[ALICE]["primary"] is True and entries[ALICE]["accessRole"] == "owner"
    assert entries[HOLIDAYS_ID]["accessRole"] == "reader"
    assert any(e["accessRole"] == "owner" and cid.endswith("@group.calendar.google.com") for cid, e in entries.items())
    assert cal.calendars().get(calendarId="primary").execute()["id"] == ALICE
    small = cal.calendarList().list(maxResults=1).execute()
    assert len(small["items"]) == 1 and small["nextPageToken"]


def test_single_events_expand_series_with_their_exceptions(sb: Sandbox) -> None:
    cal = calendar(sb)
    items, _, _ = list_all(cal, calendarId="primary", singleEvents=True, maxResults=2500)
    weekly = [i for i in items if i["summary"] == "Weekly 1:1"]
    assert len(weekly) == 19  # 20 occurrences, one cancelled (hidden without showDeleted)
    assert all(i["id"] == f"{i['recurringEventId']}_{_suffix(i)}" for i in weekly)
    moved = [i for i in weekly if i["start"] != i["originalStartTime"]]
    assert len(moved) == 1
    assert len({i["iCalUID"] for i in weekly}) == 1
    series, _, _ = list_all(cal, calendarId="primary", maxResults=2500)
    assert any(e.get("recurrence") == ["RRULE:FREQ=WEEKLY;COUNT=20"] for e in series)
    with_deleted, _, _ = list_all(cal, calendarId="primary", singleEvents=True, showDeleted=True, maxResults=2500)
    assert len([i for i in with_deleted if i.get("recurringEventId") == weekly[0]["recurringEventId"]]) == 20


def _suffix(item: dict[str, Any]) -> str:
    from datetime import UTC, datetime

    start = datetime.fromisoformat(item["originalStartTime"]["dateTime"]).astimezone(UTC)
    return start.strftime("%Y%m%dT%H%M%SZ")


def test_world_calendar_has_the_odd_cases(sb: Sandbox) -> None:
    items, _, _ = list_all(calendar(sb), calendarId="primary", singleEvents=True, maxResults=2500)
    assert any("date" in i["start"] for i in items)  # all-day
    assert any("attendees" not in i for i in items)  # nobody else
    assert any(a.get("resource") for i in items for a in i.get("attendees", []))
    assert any(a["responseStatus"] == "declined" for i in items for a in i.get("attendees", []))
    assert any(len(i.get("attendees", [])) > 25 for i in items)
    assert any(i["eventType"] == "outOfOffice" for i in items)
    assert any(not i["organizer"].get("self") for i in items)  # invited by someone else
    people = {p.email for p in sb.world.people}
    assert any(a["email"] in people for i in items for a in i.get("attendees", []))


def test_paging_clamps_to_2500_and_time_min_bounds_the_end(sb: Sandbox) -> None:
    store = sb.google.calendar
    for k in range(2600):
        start = When.timed(sb.world.now - timedelta(days=10, minutes=k))
        store.add_event(ALICE, summary=f"bulk {k}", start=start, end=start.plus(delta=timedelta(minutes=30)))
    cal = calendar(sb)
    first = cal.events().list(calendarId="primary", singleEvents=True, maxResults=9999).execute()
    assert len(first["items"]) == 2500 and "nextSyncToken" not in first
    time_min = (sb.world.now - timedelta(days=30)).isoformat()
    items, _, pages = list_all(cal, calendarId="primary", singleEvents=True, timeMin=time_min, maxResults=2500)
    assert pages == 2 and len(items) == len({i["id"] for i in items})
    assert all(_end(i) > time_min for i in items if "dateTime" in i["end"])


def _end(item: dict[str, Any]) -> str:
    from datetime import UTC, datetime

    return datetime.fromisoformat(item["end"]["dateTime"]).astimezone(UTC).isoformat()


def test_sync_token_returns_changes_cancellations_and_expires_with_410(sb: Sandbox) -> None:
    cal = calendar(sb)
    items, sync_token, _ = list_all(cal, calendarId="primary", singleEvents=True, maxResults=2500)
    store = sb.google.calendar
    start = When.timed(sb.world.now + timedelta(days=1))
    new_id = store.add_event(ALICE, summary="New", start=start, end=start.plus(delta=timedelta(hours=1)),
                             attendees=[Attendee("dana@globex.test")])  # fmt: skip
    single = next(i for i in items if "recurringEventId" not in i and i["summary"].startswith("Prep"))
    store.cancel_event(ALICE, single["id"])
    instance = next(i for i in items if i["summary"] == "Weekly 1:1")
    store.modify_event(ALICE, instance["id"], summary="Weekly 1:1 (moved room)")
    changes, next_token, _ = list_all(cal, calendarId="primary", singleEvents=True, syncToken=sync_token)
    by_id = {c["id"]: c for c in changes}
    assert set(by_id) == {new_id, single["id"], instance["id"]}
    assert by_id[single["id"]] == {"kind": "calendar#event", "etag": by_id[single["id"]]["etag"],
                                   "id": single["id"], "status": "cancelled"}  # fmt: skip
    assert by_id[instance["id"]]["summary"] == "Weekly 1:1 (moved room)"
    assert list_all(cal, calendarId="primary", singleEvents=True, syncToken=next_token)[0] == []
    with pytest.raises(HttpError) as bad:
        cal.events().list(calendarId="primary", syncToken=next_token, timeMin="2026-01-01T00:00:00Z").execute()
    assert bad.value.resp.status == 400
    store.expire_sync_tokens(ALICE)
    with pytest.raises(HttpError) as gone:
        cal.events().list(calendarId="primary", singleEvents=True, syncToken=next_token).execute()
    assert gone.value.resp.status == 410 and gone.value.error_details[0]["reason"] == "fullSyncRequired"


def test_a_cancelled_series_comes_back_as_cancelled_instances(sb: Sandbox) -> None:
    cal = calendar(sb)
    items, sync_token, _ = list_all(cal, calendarId="primary", singleEvents=True, maxResults=2500)
    series_id = next(i["recurringEventId"] for i in items if i["summary"] == "Weekly 1:1")
    sb.google.calendar.cancel_event(ALICE, series_id)
    changes, _, _ = list_all(cal, calendarId="primary", singleEvents=True, syncToken=sync_token, showDeleted=True)
    assert len(changes) == 20 and {c["status"] for c in changes} == {"cancelled"}
    assert all(c["recurringEventId"] == series_id for c in changes)


def test_retention_knob_expires_tokens_after_enough_changes(sb: Sandbox) -> None:
    cal = calendar(sb)
    _, sync_token, _ = list_all(cal, calendarId="primary", singleEvents=True, maxResults=2500)
    sb.google.configure(calendar_sync_retention=1)
    start = When.timed(sb.world.now)
    for _ in range(2):
        sb.google.calendar.add_event(ALICE, summary="x", start=start, end=start)
    with pytest.raises(HttpError) as gone:
        cal.events().list(calendarId="primary", syncToken=sync_token).execute()
    assert gone.value.resp.status == 410


def test_scopes_are_checked_and_other_calendars_are_not_found(sb: Sandbox) -> None:
    gmail_only = calendar(sb, scopes="https://www.googleapis.com/auth/gmail.metadata")
    with pytest.raises(HttpError) as denied:
        gmail_only.calendarList().list().execute()
    assert denied.value.resp.status == 403
    events_only = calendar(sb, scopes="https://www.googleapis.com/auth/calendar.events.readonly")
    assert events_only.events().list(calendarId="primary", maxResults=1).execute()["items"]
    with pytest.raises(HttpError) as missing:
        calendar(sb).events().list(calendarId="nobody@acme.test").execute()
    assert missing.value.resp.status == 404


def test_429_from_the_fault_injector_and_counters_per_endpoint(sb: Sandbox) -> None:
    cal = calendar(sb)
    sb.google.reset_stats()
    sb.google.faults.fail_next(1, "429", retry_after=3, endpoints=["events"])
    with pytest.raises(HttpError) as throttled:
        cal.events().list(calendarId="primary").execute()
    assert throttled.value.resp.status == 429 and throttled.value.resp["retry-after"] == "3"
    cal.calendarList().list().execute()
    calls = Counter(sb.google.stats_snapshot()["calls"])
    assert calls["events"] == 1 and calls["calendar_list"] == 1


def test_control_routes_add_change_and_cancel_events(sb: Sandbox) -> None:
    admin = sb.base_url + "/_sandbox/google"
    added = requests.post(
        f"{admin}/calendars/{ALICE}/events",
        json={"summary": "Via HTTP", "start": "2026-10-20T15:00:00Z", "end": "2026-10-20T15:30:00Z",
              "attendees": [{"email": "dana@globex.test", "responseStatus": "accepted"}, {"email": "bob@acme.test"}]},
        timeout=10,
    )  # fmt: skip
    assert added.status_code == 200, added.text
    event_id = added.json()["id"]
    assert event_id in sb.google.calendar.calendars["bob@acme.test"].events  # the invited member's copy
    changed = requests.patch(f"{admin}/calendars/{ALICE}/events/{event_id}", json={"summary": "Renamed"}, timeout=10)
    assert changed.json() == {"copies": 2}
    assert requests.post(f"{admin}/calendars/{ALICE}/events/{event_id}/cancel", timeout=10).status_code == 200
    assert sb.google.calendar.calendars[ALICE].events[event_id].status == "cancelled"
    assert requests.post(f"{admin}/calendars/sync-tokens/expire", json={}, timeout=10).status_code == 200
    assert requests.get(f"{admin}/calendars", timeout=10).json()[ALICE][0]["id"] == ALICE
    assert requests.post(f"{admin}/calendars/{ALICE}/events/nope/cancel", timeout=10).status_code == 404
