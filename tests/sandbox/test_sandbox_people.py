"""The People v1 emulator (and oauth2 userinfo), driven over HTTP by google-api-python-client."""

from __future__ import annotations

from typing import Any

import google_auth_httplib2
import httplib2
import pytest
import requests
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from sandbox import Sandbox
from tests.sandbox.sandbox_helpers import connect

ALICE = "alice@acme.test"
CONTACTS = "https://www.googleapis.com/auth/contacts.readonly"
OTHER = "https://www.googleapis.com/auth/contacts.other.readonly"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"
FIELDS = "names,emailAddresses,phoneNumbers,organizations,metadata"


def service(sb: Sandbox, api: str, version: str, scopes: str = f"{CONTACTS} {OTHER}") -> Any:
    token = connect(sb, ALICE, scopes)["access_token"]
    http = google_auth_httplib2.AuthorizedHttp(
        Credentials(token),  # type: ignore[no-untyped-call]
        http=httplib2.Http(timeout=10),
        refresh_status_codes=(),
    )
    endpoint = sb.google_settings()["GOOGLE_API_URL"]
    return build(api, version, http=http, static_discovery=True, client_options={"api_endpoint": endpoint})


def connections(people: Any, **args: Any) -> Any:
    return people.people().connections().list(resourceName="people/me", **args)


def walk(people: Any, **args: Any) -> tuple[list[dict[str, Any]], str | None, int]:
    """Every person of a connections walk, its nextSyncToken and the page count."""
    items: list[dict[str, Any]] = []
    page_token, pages = None, 0
    while True:
        page = connections(people, pageToken=page_token, **args).execute()
        pages += 1
        items += page.get("connections", [])
        page_token = page.get("nextPageToken")
        if not page_token:
            return items, page.get("nextSyncToken"), pages


def test_address_book_holds_the_members_correspondents_in_many_shapes(sb: Sandbox) -> None:
    items, sync_token, pages = walk(service(sb, "people", "v1"), personFields=FIELDS, pageSize=1000)
    assert pages == 1 and sync_token is None  # no requestSyncToken, no token
    emails = [[e["value"] for e in p.get("emailAddresses", [])] for p in items]
    assert any(len(e) == 2 for e in emails)  # ties two identities
    assert any(not e and p.get("phoneNumbers") for e, p in zip(emails, items, strict=True))  # a phone only
    assert any(" at " in v for e in emails for v in e)  # a broken address beside good ones
    phones = [n["value"] for p in items for n in p.get("phoneNumbers", [])]
    assert any(v.startswith("(") for v in phones) and any(v.startswith("+44") for v in phones)
    assert any(" x" in v or "ext." in v for v in phones)
    assert any(p.get("organizations", [{}])[0].get("name") for p in items)
    mailers = {email for person in sb.world.people for email in person.emails}
    assert sum(1 for e in emails for v in e if v in mailers) > len(items) // 2
    names = [p["names"][0]["displayName"] for p in items if p.get("names")]
    assert any("," in n for n in names)  # someone entered twice, as "Last, First"
    only_names = connections(service(sb, "people", "v1"), personFields="names", pageSize=5).execute()
    assert len(only_names["connections"]) == 5 and not any("emailAddresses" in p for p in only_names["connections"])


def test_sync_tokens_report_additions_edits_and_deletions(sb: Sandbox) -> None:
    people = service(sb, "people", "v1")
    items, sync_token, _ = walk(people, personFields=FIELDS, pageSize=1000, requestSyncToken=True)
    assert sync_token
    store = sb.google.people
    added = store.add_contact(ALICE, name="Dana Reyes", emails=["dana@globex.test"], phones=["(415) 555-0100"])
    store.edit_contact(ALICE, items[0]["resourceName"], company="Initech")
    store.delete_contact(ALICE, items[1]["resourceName"])
    changes, next_token, _ = walk(
        people, personFields=FIELDS, pageSize=1000, requestSyncToken=True, syncToken=sync_token
    )
    by_name = {p["resourceName"]: p for p in changes}
    assert set(by_name) == {added, items[0]["resourceName"], items[1]["resourceName"]}
    assert by_name[items[1]["resourceName"]]["metadata"]["deleted"] is True
    assert by_name[items[0]["resourceName"]]["organizations"][0]["name"] == "Initech"
    assert walk(people, personFields=FIELDS, pageSize=1000, requestSyncToken=True, syncToken=next_token)[0] == []
    with pytest.raises(HttpError) as mismatch:
        connections(people, personFields="names", syncToken=next_token, requestSyncToken=True).execute()
    assert mismatch.value.resp.status == 400
    store.expire_sync_tokens(ALICE)
    with pytest.raises(HttpError) as expired:
        connections(people, personFields=FIELDS, pageSize=1000, requestSyncToken=True, syncToken=next_token).execute()
    assert expired.value.resp.status == 400
    assert expired.value.error_details[0]["reason"] == "EXPIRED_SYNC_TOKEN"


def test_page_size_limits_and_required_masks(sb: Sandbox) -> None:
    people = service(sb, "people", "v1")
    for bad in ({"personFields": FIELDS, "pageSize": 1001}, {"pageSize": 10}, {"personFields": "nonsense"}):
        with pytest.raises(HttpError) as refused:
            connections(people, **bad).execute()
        assert refused.value.resp.status == 400
    default = connections(people, personFields="names").execute()
    assert len(default["connections"]) == 100 and default["nextPageToken"]
    with pytest.raises(HttpError):  # a page token is bound to the first call's parameters
        connections(people, personFields="emailAddresses", pageToken=default["nextPageToken"]).execute()


def test_other_contacts_need_their_own_scope(sb: Sandbox) -> None:
    others = service(sb, "people", "v1").otherContacts().list(readMask="names,emailAddresses", requestSyncToken=True)
    page = others.execute()
    assert page["otherContacts"] and page["nextSyncToken"]
    assert all(p["resourceName"].startswith("otherContacts/") for p in page["otherContacts"])
    contacts_only = service(sb, "people", "v1", scopes=CONTACTS)
    with pytest.raises(HttpError) as denied:
        contacts_only.otherContacts().list(readMask="names").execute()
    assert denied.value.resp.status == 403
    with pytest.raises(HttpError) as wrong_mask:
        service(sb, "people", "v1").otherContacts().list(readMask="organizations").execute()
    assert wrong_mask.value.resp.status == 400


def test_userinfo_gives_the_email_only_with_an_email_scope(sb: Sandbox) -> None:
    assert service(sb, "oauth2", "v2", scopes=EMAIL).userinfo().get().execute()["email"] == ALICE
    assert "email" not in service(sb, "oauth2", "v2", scopes="openid").userinfo().get().execute()
    with pytest.raises(HttpError) as denied:
        service(sb, "oauth2", "v2", scopes=CONTACTS).userinfo().get().execute()
    assert denied.value.resp.status == 403


def test_control_routes_add_edit_and_delete_contacts(sb: Sandbox) -> None:
    admin = sb.base_url + "/_sandbox/google/contacts"
    added = requests.post(f"{admin}/{ALICE}", json={"name": "Dana", "emails": ["dana@globex.test"]}, timeout=10)
    name = added.json()["resourceName"]
    assert name.startswith("people/c")
    assert requests.patch(f"{admin}/{ALICE}/{name}", json={"phones": ["+1 415 555 0100"]}, timeout=10).ok
    assert requests.delete(f"{admin}/{ALICE}/{name}", timeout=10).ok
    assert requests.delete(f"{admin}/{ALICE}/{name}", timeout=10).status_code == 404
    other = requests.post(f"{admin}/{ALICE}", json={"emails": ["x@y.test"], "book": "other"}, timeout=10).json()
    assert other["resourceName"].startswith("otherContacts/c")
    assert requests.post(f"{admin}/sync-tokens/expire", json={"member": ALICE}, timeout=10).ok
    assert requests.get(admin, timeout=10).json()[f"{ALICE}/other"] > 0
