"""The Salesforce emulator over HTTPS: OAuth web-server flow with PKCE, SOQL subset, paging, getDeleted, limits."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from sandbox.salesforce_data import generate_org
from sandbox.salesforce_soql import SoqlError, parse
from sandbox.server import Sandbox
from sandbox.world import World, generate_world

REDIRECT = "http://127.0.0.1:9/oauth/callback/salesforce"
ALICE = "alice@acme.test"


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=3, size=600)


@pytest.fixture
def sb(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    certs = tmp_path_factory.getbasetemp() / "salesforce-sandbox-ca"
    with Sandbox(world, tls=True, cert_dir=str(certs)) as running:
        yield running


def authorize(sb: Sandbox, *, login: str = ALICE, scope: str = "api id refresh_token") -> tuple[requests.Response, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    settings = sb.salesforce_settings()
    response = requests.get(
        settings["SALESFORCE_AUTH_URL"],
        params={
            "response_type": "code",
            "client_id": settings["SALESFORCE_CLIENT_ID"],
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": "st",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "login_hint": login,
        },
        allow_redirects=False,
        verify=sb.ca_path,
        timeout=10,
    )
    return response, verifier


def token_call(sb: Sandbox, **form: str) -> requests.Response:
    settings = sb.salesforce_settings()
    body = {"client_id": settings["SALESFORCE_CLIENT_ID"], "client_secret": settings["SALESFORCE_CLIENT_SECRET"]}
    return requests.post(settings["SALESFORCE_TOKEN_URL"], data=body | form, verify=sb.ca_path, timeout=10)


def login(sb: Sandbox, email: str = ALICE, scope: str = "api id refresh_token") -> dict[str, Any]:
    consent, verifier = authorize(sb, login=email, scope=scope)
    assert consent.status_code == 302, consent.text
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(consent.headers["location"]).query)
    answer = token_call(
        sb, grant_type="authorization_code", code=query["code"][0], redirect_uri=REDIRECT, code_verifier=verifier
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def client(sb: Sandbox, tokens: dict[str, Any]) -> Salesforce:
    session = requests.Session()
    session.verify = sb.ca_path or True
    session.trust_env = False
    sf = Salesforce(instance_url=tokens["instance_url"], session_id=tokens["access_token"], session=session)
    sf.base_url = f"{tokens['instance_url']}/services/data/v{sf.sf_version}/"
    sf.oauth2_url = f"{tokens['instance_url']}/services/oauth2/"
    return sf


# -- SOQL ---------------------------------------------------------------------------------------------


def test_soql_subset_parses_what_the_connector_sends() -> None:
    plan = parse(
        "select Id, account.name FROM contact WHERE IsDeleted = false AND (SystemModstamp >= "
        "2026-01-01T00:00:00.000+0000 OR Id IN ('003Sb0000000001AAA')) AND NOT (Email = null) "
        "ORDER BY SystemModstamp ASC, Id DESC NULLS LAST LIMIT 10"
    )
    assert plan.sobject == "Contact" and plan.limit == 10 and [k.descending for k in plan.order] == [False, True]
    events = parse("SELECT Id, (SELECT RelationId, Status FROM EventRelations) FROM Event WHERE IsChild = false")
    assert events.sobject == "Event" and len(events.fields) == 2


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM Contact GROUP BY Id", "MALFORMED_QUERY"),
        ("SELECT COUNT() FROM Contact", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE Name LIKE 'a%'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE"),
        ("SELECT Nope FROM Contact", "INVALID_FIELD"),
        ("SELECT IsDeleted FROM User", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE SystemModstamp > '2026-01-01'", "INVALID_FIELD"),
        ("SELECT Account.Owner.Name FROM Contact", "MALFORMED_QUERY"),
        ("", "MALFORMED_QUERY"),
    ],
)
def test_unsupported_soql_is_refused_like_salesforce(soql: str, code: str) -> None:
    with pytest.raises(SoqlError) as err:
        parse(soql)
    assert err.value.code == code


@given(st.text(alphabet="SELCTFROMWHEANDIdNm(),'=<>!. 0123456789-:TZ", max_size=80))
def test_any_text_parses_or_is_refused(text: str) -> None:
    try:
        parse("SELECT Id FROM Contact WHERE " + text)
    except SoqlError as exc:
        assert exc.code in ("MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE")


# -- OAuth -----------------------------------------------------------------------------------------------


def test_web_server_flow_answers_like_salesforce(sb: Sandbox) -> None:
    tokens = login(sb)
    assert tokens["instance_url"] == sb.base_url + "/salesforce"
    assert tokens["id"].startswith(tokens["instance_url"] + "/id/00D")
    assert {"signature", "issued_at", "refresh_token"} <= set(tokens) and "expires_in" not in tokens
    assert client(sb, tokens).oauth2("userinfo")["email"] == ALICE


def test_pkce_and_grant_rules(sb: Sandbox) -> None:
    consent, _ = authorize(sb)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(consent.headers["location"]).query)["code"][0]
    wrong = token_call(sb, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier="x" * 43)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    other = token_call(sb, grant_type="client_credentials")  # only the web-server flow and refresh exist
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"
    unknown, _ = authorize(sb, login="mallory@evil.test")
    assert "error=access_denied" in unknown.headers["location"]


def test_refresh_rotation_revoke_and_scopes(sb: Sandbox) -> None:
    tokens = login(sb)
    sb.salesforce.configure(rotate_refresh_tokens=True)
    fresh = token_call(sb, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert fresh["instance_url"] == tokens["instance_url"] and fresh["refresh_token"] != tokens["refresh_token"]
    stale = token_call(sb, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
    revoke = sb.salesforce_settings()["SALESFORCE_REVOKE_URL"]
    assert requests.post(revoke, data={"token": fresh["refresh_token"]}, verify=sb.ca_path, timeout=10).ok
    again = requests.post(revoke, data={"token": fresh["refresh_token"]}, verify=sb.ca_path, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"
    with pytest.raises(SalesforceExpiredSession):
        client(sb, fresh).query("SELECT Id FROM User")
    api_only = login(sb, scope="api refresh_token")
    assert (
        requests.get(
            api_only["instance_url"] + "/services/oauth2/userinfo",
            headers={"Authorization": f"Bearer {api_only['access_token']}"},
            verify=sb.ca_path,
            timeout=10,
        ).status_code
        == 403
    )


# -- REST ---------------------------------------------------------------------------------------------------


def test_query_paging_honours_batch_size_and_limit_info(sb: Sandbox) -> None:
    sb.salesforce.create_many("Task", [{"Subject": f"t{i}", "TaskSubtype": "Call"} for i in range(450)])
    sf = client(sb, login(sb))
    soql = "SELECT Id FROM Task ORDER BY SystemModstamp, Id"
    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    total = first["totalSize"]
    seen = [r["Id"] for r in first["records"]]
    assert (
        len(seen) == 200 and not first["done"] and "/salesforce/services/data/v59.0/query/" in first["nextRecordsUrl"]
    )
    page = first
    while not page["done"]:
        page = sf.query_more(
            page["nextRecordsUrl"], identifier_is_url=True, headers={"Sforce-Query-Options": "batchSize=5"}
        )
        seen += [r["Id"] for r in page["records"]]
    assert len(seen) == len(set(seen)) == total
    assert sf.api_usage["api-usage"].used == sb.salesforce.api_used
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)  # consumed locators are gone
    assert "INVALID_QUERY_LOCATOR" in str(err.value)


def test_query_all_returns_deleted_and_merged_rows_until_purged(sb: Sandbox) -> None:
    state = sb.salesforce
    a, b = state.create_many("Contact", [{"LastName": "Twin", "Email": "twin@globex.test"}] * 2)
    state.merge(a, [b])
    sf = client(sb, login(sb))
    soql = f"SELECT Id, IsDeleted, MasterRecordId FROM Contact WHERE Id IN ('{a}', '{b}')"
    assert [r["Id"] for r in sf.query(soql)["records"]] == [a]
    rows = {r["Id"]: r for r in sf.query_all(soql, include_deleted=True)["records"]}
    assert rows[b]["IsDeleted"] is True and rows[b]["MasterRecordId"] == a
    state.advance(days=16)
    assert [r["Id"] for r in sf.query_all(soql, include_deleted=True)["records"]] == [a]


def test_task_subtype_filters_include_deleted_rows_and_the_subtype_is_create_only(sb: Sandbox) -> None:
    state = sb.salesforce
    call, email, todo, legacy, listed = state.create_many(
        "Task",
        [
            {"TaskSubtype": "Call", "CallType": "Inbound"},
            {"TaskSubtype": "Email"},
            {"TaskSubtype": "Task"},
            {"TaskSubtype": "Task", "CallType": "Outbound"},
            {"TaskSubtype": "ListEmail"},
        ],
    )
    state.delete(email)
    state.delete(todo)
    sf = client(sb, login(sb))
    mine = f"Id IN ('{call}', '{email}', '{todo}', '{legacy}', '{listed}')"
    soql = f"SELECT Id, IsDeleted FROM Task WHERE (TaskSubtype IN ('Call', 'Email') OR CallType != null) AND {mine}"
    rows = {r["Id"]: r["IsDeleted"] for r in sf.query_all(soql, include_deleted=True)["records"]}
    assert rows == {call: False, email: True, legacy: False}  # queryAll: the deleted email, not the to-do
    assert {r["Id"] for r in sf.query(soql)["records"]} == {call, legacy}
    assert sf.query(f"SELECT Id FROM Task WHERE TaskSubtype = null AND {mine}")["totalSize"] == 0
    with pytest.raises(ValueError, match="cannot be updated"):
        state.update(call, {"TaskSubtype": "Task"})  # Task.TaskSubtype: Create, no Update
    with pytest.raises(ValueError, match="restricted picklist"):
        state.create("Task", {"TaskSubtype": "Fax"})
    state.update(legacy, {"CallType": None})  # other fields stay updateable


def test_get_deleted_window(sb: Sandbox) -> None:
    state = sb.salesforce
    contact = state.create("Contact", {"LastName": "Gone"})
    state.delete(contact)
    sf = client(sb, login(sb))
    now = state.now()
    contacts = sf.Contact
    contacts.base_url = sf.base_url + "sobjects/Contact/"  # SFType, too, keeps only the instance's host
    found = contacts.deleted(now - timedelta(days=1), now + timedelta(minutes=2))
    assert [r["id"] for r in found["deletedRecords"]] == [contact]
    with pytest.raises(SalesforceMalformedRequest) as err:
        contacts.deleted(now - timedelta(days=20), now)
    assert "INVALID_REPLICATION_DATE" in str(err.value)


def test_limits_sessions_and_faults(sb: Sandbox) -> None:
    state = sb.salesforce
    sf = client(sb, login(sb))
    state.configure(daily_api_limit=state.api_used)
    with pytest.raises(SalesforceRefusedRequest) as err:
        sf.query("SELECT Id FROM User")
    assert "REQUEST_LIMIT_EXCEEDED" in str(err.value)
    state.configure(daily_api_limit=1_000_000)
    state.auth.expire_sessions()
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.query("SELECT Id FROM User")
    assert "INVALID_SESSION_ID" in str(expired.value)
    sf = client(sb, login(sb))
    state.faults.fail_next(1, "503", retry_after=7, endpoints=["query"])
    bearer = {"Authorization": "Bearer " + sf.session_id}
    response = requests.get(
        sf.base_url + "query", params={"q": "SELECT Id FROM User"}, headers=bearer, verify=sb.ca_path, timeout=10
    )
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    assert response.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"


def test_admin_api_mutates_and_counts(sb: Sandbox) -> None:
    admin = sb.base_url + "/_sandbox/salesforce"
    created = requests.post(admin + "/sobjects/Contact", json={"LastName": "Admin", "Email": "a@b.test"},
                            verify=sb.ca_path, timeout=10).json()["id"]  # fmt: skip
    assert requests.patch(f"{admin}/sobjects/Contact/{created}", json={"FirstName": "Ada"},
                          verify=sb.ca_path, timeout=10).ok  # fmt: skip
    assert sb.salesforce.record(created)["Name"] == "Ada Admin"  # type: ignore[index]
    assert requests.delete(f"{admin}/sobjects/Contact/{created}", verify=sb.ca_path, timeout=10).ok
    sf = client(sb, login(sb))
    sf.query("SELECT Id FROM Lead")
    stats = requests.get(admin + "/stats", verify=sb.ca_path, timeout=10).json()
    assert stats["object_calls"]["query:Lead"] == 1 and stats["token_calls"]["authorization_code"] == 1


def test_the_org_is_grown_deterministically_from_the_world(world: World) -> None:
    one, two = generate_org(world), generate_org(world)
    assert one.records == two.records
    contacts = list(one.records["Contact"].values())
    emails = {e for p in world.people for e in p.emails}
    assert any(c["Email"] is None and c["Phone"] for c in contacts)  # known by phone only
    assert {c["Email"] for c in contacts if c["Email"]} <= emails  # the world's people, not new ones
    assert any(c["MasterRecordId"] and c["IsDeleted"] for c in contacts)  # a merge still in the Recycle Bin
    assert {u["Email"] for u in one.records["User"].values()} == set(world.members)
    assert {t["OwnerId"] for t in one.records["Task"].values()} <= set(one.records["User"])
