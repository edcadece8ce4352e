"""The HubSpot emulator over HTTPS, driven by hubspot-api-client (and requests for the browser hops)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.objects import ApiException as ObjectsError
from hubspot.crm.objects import PublicObjectSearchRequest
from hubspot.crm.owners import ApiException as OwnersError

from sandbox.hubspot_data import generate_portal
from sandbox.server import Sandbox
from sandbox.world import World, generate_world

REDIRECT = "http://127.0.0.1:9/oauth/callback/hubspot"
READ_ALL = (
    "oauth crm.objects.contacts.read crm.objects.companies.read crm.objects.owners.read "
    "crm.objects.calls.read crm.objects.meetings.read crm.objects.emails.read sales-email-read"
)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=5, size=900)


@pytest.fixture(scope="module")
def served(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(world, tls=True, cert_dir=str(tmp_path_factory.getbasetemp() / "hubspot-ca")) as sandbox:
        yield sandbox


@pytest.fixture
def sb(served: Sandbox) -> Sandbox:
    """The module's sandbox with a fresh HubSpot emulator (portal, knobs, faults, counters)."""
    served.hubspot.reset()
    return served


def authorize(sb: Sandbox, *, login: str = "alice@acme.test", scope: str = READ_ALL, **extra: str) -> requests.Response:
    settings = sb.hubspot_settings()
    params = {"client_id": settings["HUBSPOT_CLIENT_ID"], "redirect_uri": REDIRECT, "scope": scope, "state": "st"}
    return requests.get(
        settings["HUBSPOT_AUTH_URL"],
        params={**params, "login_hint": login, **extra},
        allow_redirects=False,
        verify=sb.ca_path,
        timeout=10,
    )


def code_of(response: requests.Response) -> str:
    assert response.status_code == 302, response.text
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(response.headers["location"]).query)
    assert query["state"] == ["st"]
    return query["code"][0]


def token_call(sb: Sandbox, **form: str) -> requests.Response:
    settings = sb.hubspot_settings()
    body = {"client_id": settings["HUBSPOT_CLIENT_ID"], "client_secret": settings["HUBSPOT_CLIENT_SECRET"], **form}
    return requests.post(settings["HUBSPOT_TOKEN_URL"], data=body, verify=sb.ca_path, timeout=10)


def sign_in(sb: Sandbox, login: str = "alice@acme.test", scope: str = READ_ALL) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    code = code_of(authorize(sb, login=login, scope=scope, code_challenge=challenge, code_challenge_method="S256"))
    answer = token_call(sb, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def client(sb: Sandbox, token: str) -> HubSpot:
    """The library on the sandbox; retry=False, or urllib3 would quietly sleep out a 429's Retry-After."""
    host = sb.hubspot_settings()["HUBSPOT_API_URL"]
    return HubSpot(access_token=token, host=host, ssl_ca_cert=sb.ca_path, retry=False)


# -- OAuth -------------------------------------------------------------------------------------------


def test_code_flow_with_pkce_gives_thirty_minute_tokens_for_the_hinted_user(sb: Sandbox) -> None:
    tokens = sign_in(sb, "bob@acme.test")
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 1800
    info = client(sb, tokens["access_token"]).oauth.access_tokens_api.get(tokens["access_token"])
    assert info.user == "bob@acme.test" and "crm.objects.contacts.read" in info.scopes


def test_pkce_binds_the_code_but_is_not_required(sb: Sandbox) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    code = code_of(authorize(sb, code_challenge=challenge, code_challenge_method="S256"))
    wrong = token_call(sb, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier="x" * 43)
    assert wrong.status_code == 400 and wrong.json()["status"] == "BAD_AUTH_CODE"
    plain = code_of(authorize(sb))  # no challenge: a confidential app may redeem without a verifier
    assert token_call(sb, grant_type="authorization_code", code=plain, redirect_uri=REDIRECT).status_code == 200
    replay = token_call(sb, grant_type="authorization_code", code=plain, redirect_uri=REDIRECT)
    assert replay.status_code == 400 and replay.json()["status"] == "BAD_AUTH_CODE"


def test_refresh_keeps_the_refresh_token_until_it_is_deleted(sb: Sandbox) -> None:
    tokens = sign_in(sb)
    refreshed = token_call(sb, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh_token"] == tokens["refresh_token"]
    assert refreshed.json()["access_token"] != tokens["access_token"]
    url = sb.hubspot_settings()["HUBSPOT_REVOKE_URL"] + tokens["refresh_token"]
    assert requests.delete(url, verify=sb.ca_path, timeout=10).status_code == 204
    assert requests.delete(url, verify=sb.ca_path, timeout=10).status_code == 404
    dead = token_call(sb, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert dead.status_code == 400 and dead.json()["status"] == "BAD_REFRESH_TOKEN"


def test_bad_client_scope_or_user_never_gets_a_code(sb: Sandbox) -> None:
    assert authorize(sb, scope="oauth crm.objects.everything.write").status_code == 400
    denied = authorize(sb, login="mallory@evil.test")
    assert denied.status_code == 302 and "error=access_denied" in denied.headers["location"]
    wrong_secret = token_call(sb, grant_type="refresh_token", refresh_token="x", client_secret="nope")
    assert wrong_secret.json()["status"] == "BAD_CLIENT_SECRET"


def test_expired_and_unknown_tokens_are_401(sb: Sandbox) -> None:
    tokens = sign_in(sb)
    api = client(sb, tokens["access_token"]).crm.objects.basic_api
    assert api.get_page("contacts", limit=1).results
    sb.hubspot.auth.expire_access_tokens("alice@acme.test")
    with pytest.raises(ObjectsError) as expired:
        api.get_page("contacts", limit=1)
    assert expired.value.status == 401 and b"EXPIRED_AUTHENTICATION" in expired.value.body.encode()
    with pytest.raises(ObjectsError) as unknown:
        client(sb, "C-not-a-token").crm.objects.basic_api.get_page("contacts", limit=1)
    assert unknown.value.status == 401


# -- CRM reads ---------------------------------------------------------------------------------------


def test_list_pages_by_id_with_inline_associations_and_archived_records(sb: Sandbox) -> None:
    api = client(sb, sign_in(sb)["access_token"]).crm.objects.basic_api
    seen, after = [], None
    while True:
        page = api.get_page("calls", limit=100, after=after, properties=["hubspot_owner_id"], associations=["contacts"])
        seen += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    with sb.hubspot.lock:
        live = sorted(str(r.id) for r in sb.hubspot.portal.records["calls"].values() if not r.archived)
    assert seen == live
    with_links = [r for r in api.get_page("calls", limit=100, associations=["contacts"]).results if r.associations]
    assert with_links and with_links[0].associations["contacts"].results[0].type == "call_to_contact"
    sb.hubspot.store.archive("calls", int(seen[0]))
    archived = api.get_page("calls", limit=100, archived=True).results
    assert [r.id for r in archived] == [seen[0]] and archived[0].archived_at is not None


def test_search_pages_by_offset_and_refuses_past_ten_thousand(sb: Sandbox, world: World) -> None:
    sb.hubspot.load_portal(generate_portal(world, extra_contacts=10_300, tie_size=1))
    search = client(sb, sign_in(sb)["access_token"]).crm.objects.search_api
    body: dict[str, Any] = {"sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": 200}
    first = search.do_search("contacts", PublicObjectSearchRequest(**body))
    assert first.total > 10_000 and len(first.results) == 200 and first.paging.next.after == "200"
    last = search.do_search("contacts", PublicObjectSearchRequest(**body, after="9800"))
    assert last.paging.next.after == "10000"
    with pytest.raises(ObjectsError) as beyond:
        search.do_search("contacts", PublicObjectSearchRequest(**body, after="10000"))
    assert beyond.value.status == 400 and b"VALIDATION_ERROR" in beyond.value.body.encode()
    with pytest.raises(ObjectsError) as too_big:
        search.do_search("contacts", PublicObjectSearchRequest(limit=201))
    assert too_big.value.status == 400


def test_search_filters_and_sorts_like_hubspot(sb: Sandbox) -> None:
    search = client(sb, sign_in(sb)["access_token"]).crm.objects.search_api
    with sb.hubspot.lock:
        times = sorted(r.updated_ms for r in sb.hubspot.portal.records["contacts"].values())
    cut = times[len(times) // 2]
    body = PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(cut)}]}],
        sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        properties=["email", "lastmodifieddate"],
        limit=200,
    )
    found = search.do_search("contacts", body)
    assert found.total == sum(1 for t in times if t >= cut)
    stamps = [r.properties["lastmodifieddate"] for r in found.results]
    assert stamps == sorted(stamps) and set(found.results[0].properties) >= {"email", "hs_object_id"}


def test_batch_read_takes_at_most_a_hundred_and_reports_missing_ids(sb: Sandbox) -> None:
    batch = client(sb, sign_in(sb)["access_token"]).crm.objects.batch_api
    with sb.hubspot.lock:
        ids = [str(i) for i in list(sb.hubspot.portal.records["companies"])[:3]]
    found = batch.read("companies", {"inputs": [{"id": i} for i in [*ids, "999"]], "properties": ["name"]})
    assert sorted(r.id for r in found.results) == sorted(ids) and found.num_errors == 1
    with pytest.raises(ObjectsError) as too_many:
        batch.read("companies", {"inputs": [{"id": str(i)} for i in range(101)], "properties": ["name"]})
    assert too_many.value.status == 400


def test_owners_are_the_members_and_the_former_rep_is_archived(sb: Sandbox, world: World) -> None:
    owners = client(sb, sign_in(sb)["access_token"]).crm.owners.owners_api
    assert sorted(o.email for o in owners.get_page(limit=100).results) == sorted(world.members)
    assert [o.email for o in owners.get_page(archived=True).results] == ["former.rep@acme.test"]


def test_associations_v4_batch_read(sb: Sandbox) -> None:
    v4 = client(sb, sign_in(sb)["access_token"]).crm.associations.v4.batch_api
    with sb.hubspot.lock:
        meetings = {
            str(r.id): r.associations.get("contacts", set()) for r in sb.hubspot.portal.records["meetings"].values()
        }
    ids = list(meetings)[:40]
    answer = v4.get_page("meetings", "contacts", {"inputs": [{"id": i} for i in ids]})
    got = {r._from.id: {int(t.to_object_id) for t in r.to} for r in answer.results}
    assert got == {i: meetings[i] for i in ids if meetings[i]}
    assert all(t.association_types[0].type_id == 200 for r in answer.results for t in r.to)


def test_a_renamed_company_is_searchable_by_time_and_reads_its_contacts_in_pages(sb: Sandbox) -> None:
    api = client(sb, sign_in(sb)["access_token"]).crm
    store = sb.hubspot.store
    with sb.hubspot.lock:  # the contacts hold the link, as HubSpot's associations read both ways
        company = store.create("companies", {"name": "Initech"}, at_ms=sb.hubspot.now_ms() - 60_000)
        linked = [store.create("contacts", {}, {"companies": [company.id]}).id for _ in range(1100)]
    before = company.properties["hs_lastmodifieddate"] or ""
    url = f"{sb.base_url}/_sandbox/hubspot/objects/companies/{company.id}"
    renamed = requests.patch(url, json={"properties": {"name": "Initrode"}}, verify=sb.ca_path, timeout=10).json()
    assert renamed["properties"]["name"] == "Initrode" and renamed["properties"]["hs_lastmodifieddate"] > before
    newest = api.objects.search_api.do_search(
        "companies",
        PublicObjectSearchRequest(
            sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}], properties=["name"], limit=1
        ),
    )
    assert [(r.id, r.properties["name"]) for r in newest.results] == [(str(company.id), "Initrode")]
    got: list[int] = []
    inputs: list[dict[str, str]] = [{"id": str(company.id)}]
    while inputs:
        (result,) = api.associations.v4.batch_api.get_page("companies", "contacts", {"inputs": inputs}).results
        got += [int(t.to_object_id) for t in result.to]
        assert {t.association_types[0].type_id for t in result.to} == {280}
        inputs = [{"id": str(company.id), "after": result.paging.next.after}] if result.paging else []
    assert got == linked and sb.hubspot.stats_snapshot()["calls"]["associations"] == 3  # 500 + 500 + 100


def test_scopes_are_enforced_and_email_content_needs_sales_email_read(sb: Sandbox) -> None:
    narrow = client(sb, sign_in(sb, scope="oauth crm.objects.contacts.read")["access_token"])
    with pytest.raises(OwnersError) as refused:
        narrow.crm.owners.owners_api.get_page()
    assert refused.value.status == 403 and b"MISSING_SCOPES" in refused.value.body.encode()
    page = narrow.crm.objects.basic_api.get_page(
        "emails", limit=100, properties=["hs_email_message_id", "hs_timestamp"]
    )
    assert page.results and all("hs_email_message_id" not in r.properties for r in page.results)
    full = client(sb, sign_in(sb)["access_token"]).crm.objects.basic_api
    props = [r.properties for r in full.get_page("emails", limit=100, properties=["hs_email_message_id"]).results]
    assert any(p.get("hs_email_message_id") for p in props)


def test_rate_limits_answer_429_with_the_policy_and_headers(sb: Sandbox) -> None:
    api = client(sb, sign_in(sb)["access_token"]).crm.objects
    sb.hubspot.configure(burst_limit=3, burst_interval_ms=60_000, search_per_second=1)
    for _ in range(3):
        api.basic_api.get_page("contacts", limit=1)
    with pytest.raises(ObjectsError) as burst:
        api.basic_api.get_page("contacts", limit=1)
    assert burst.value.status == 429 and b'"policyName": "TEN_SECONDLY_ROLLING"' in burst.value.body.encode()
    assert burst.value.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "60000"
    assert burst.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    api.search_api.do_search("contacts", PublicObjectSearchRequest(limit=1))
    with pytest.raises(ObjectsError) as secondly:
        api.search_api.do_search("contacts", PublicObjectSearchRequest(limit=1))
    assert b"SECONDLY" in secondly.value.body.encode() and "X-HubSpot-RateLimit-Max" not in secondly.value.headers


def test_injected_faults_use_hubspot_shapes_and_count(sb: Sandbox) -> None:
    api = client(sb, sign_in(sb)["access_token"]).crm.objects.basic_api
    sb.hubspot.faults.fail_next(1, "429", retry_after=7, endpoints=["list"])
    with pytest.raises(ObjectsError) as limited:
        api.get_page("contacts", limit=1)
    assert limited.value.headers["Retry-After"] == "7" and b"RATE_LIMIT" in limited.value.body.encode()
    api.get_page("contacts", limit=1)  # back before the 7 s are up
    stats = sb.hubspot.stats_snapshot()
    assert stats["early_retries"] == 1 and stats["calls"]["list"] == 2
    assert stats["users"]["alice@acme.test"]["calls"]["list"] == 2


# -- control API and data --------------------------------------------------------------------------


def test_admin_api_mutates_the_crm_over_http(sb: Sandbox) -> None:
    admin = sb.base_url + "/_sandbox/hubspot"

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = requests.request(method, admin + path, json=body, verify=sb.ca_path, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    made = call("POST", "/objects/contacts", {"properties": {"email": "new@globex.test", "firstname": "New"}})
    twin = call("POST", "/objects/contacts", {"properties": {"email": "new2@globex.test"}})
    call("PATCH", f"/objects/contacts/{made['id']}", {"properties": {"lastname": "Person"}})
    merged = call("POST", "/objects/contacts/merge", {"primaryObjectId": made["id"], "objectIdToMerge": twin["id"]})
    assert merged["properties"]["hs_merged_object_ids"] == twin["id"]
    assert "new2@globex.test" in merged["properties"]["hs_additional_emails"]
    assert call("DELETE", f"/objects/contacts/{made['id']}")["archived"] is True
    assert call("POST", "/config", {"burst_limit": 5})["burst_limit"] == 5
    assert requests.get(admin + "/nope", verify=sb.ca_path, timeout=10).status_code == 404


def test_portal_is_deterministic_and_tied_to_the_world(world: World) -> None:
    first, second = generate_portal(world), generate_portal(world)
    assert {k: sorted(v) for k, v in first.records.items()} == {k: sorted(v) for k, v in second.records.items()}
    emails = {(r.properties.get("email") or "").lower() for r in first.records["contacts"].values()}
    externals = {p.email.lower() for p in world.people if not p.colleague}
    assert len(emails & externals) > 0.9 * len(externals)
    assert first.merged_into and any(
        r.properties.get("hs_merged_object_ids") for r in first.records["contacts"].values()
    )
    sent = {m.message_id for msgs in world.mailboxes.values() for m in msgs}
    logged = [r.properties.get("hs_email_message_id") for r in first.records["emails"].values()]
    assert any(mid in sent for mid in logged if mid)
    big = generate_portal(world, extra_contacts=15_000, tie_size=500)
    assert len(big.records["contacts"]) > 15_000


def test_settings_name_every_hubspot_endpoint(sb: Sandbox) -> None:
    settings = sb.settings()
    assert {k for k in settings if k.startswith("HUBSPOT_")} == {
        f"HUBSPOT_{n}" for n in ("CLIENT_ID", "CLIENT_SECRET", "AUTH_URL", "TOKEN_URL", "REVOKE_URL", "API_URL")
    }
    health = requests.get(sb.base_url + "/_sandbox/health", verify=sb.ca_path, timeout=10).json()
    assert "hubspot" in health["providers"]
