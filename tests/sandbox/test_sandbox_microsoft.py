"""The Microsoft emulator on its own: identity documents, signed id_tokens, PKCE, Graph shapes and knobs."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from sandbox.microsoft_state import MicrosoftState
from sandbox.server import Sandbox
from sandbox.world import World, generate_world

REDIRECT = "http://127.0.0.1:9/cb"
ALICE = "alice@acme.test"


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=2, size=300)


@pytest.fixture
def sb(world: World) -> Iterator[Sandbox]:
    box = Sandbox(world, tls=True).start()
    yield box
    box.stop()


def _get(sb: Sandbox, url: str, **kwargs) -> requests.Response:
    return requests.get(url, verify=sb.ca_path, timeout=10, allow_redirects=False, **kwargs)


def _authorize(sb: Sandbox, **overrides: str) -> dict[str, str]:
    conf = sb.microsoft_settings()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"client_id": conf["MICROSOFT_CLIENT_ID"], "response_type": "code", "redirect_uri": REDIRECT,
              "scope": "openid offline_access Mail.ReadBasic User.Read Calendars.Read Contacts.Read",
              "state": "st", "nonce": "n-123", "code_challenge": challenge, "code_challenge_method": "S256",
              "login_hint": ALICE}
    params.update(overrides)
    answer = _get(sb, conf["MICROSOFT_AUTH_URL"] + "/oauth2/v2.0/authorize", params=params)
    assert answer.status_code == 302, answer.text[:200]
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    query["verifier"] = verifier
    return query


GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


def _redeem(sb: Sandbox, code: str, verifier: str, scope: str = GRAPH_DEFAULT) -> requests.Response:
    conf = sb.microsoft_settings()
    return requests.post(conf["MICROSOFT_TOKEN_URL"], verify=sb.ca_path, timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
        "client_id": conf["MICROSOFT_CLIENT_ID"], "client_secret": conf["MICROSOFT_CLIENT_SECRET"], "scope": scope})


def _token(sb: Sandbox) -> str:
    query = _authorize(sb)
    return str(_redeem(sb, query["code"], query["verifier"]).json()["access_token"])


def test_discovery_and_a_verifiable_id_token(sb: Sandbox) -> None:
    conf = sb.microsoft_settings()
    doc = _get(sb, conf["MICROSOFT_AUTH_URL"] + "/v2.0/.well-known/openid-configuration").json()
    assert doc["issuer"].endswith("/microsoft/{tenantid}/v2.0")
    assert doc["token_endpoint"] == conf["MICROSOFT_TOKEN_URL"]
    query = _authorize(sb)
    body = _redeem(sb, query["code"], query["verifier"]).json()
    assert body["token_type"] == "Bearer" and body["refresh_token"] and "offline_access" not in body["scope"]
    keys = jwt.PyJWKSet.from_dict(_get(sb, doc["jwks_uri"]).json())
    header = jwt.get_unverified_header(body["id_token"])
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    tid = sb.microsoft.identity.tenant_id
    claims = jwt.decode(body["id_token"], key.key, algorithms=["RS256"], audience=conf["MICROSOFT_CLIENT_ID"],
                        issuer=doc["issuer"].replace("{tenantid}", tid))
    assert claims["nonce"] == "n-123" and claims["tid"] == tid and "email" not in claims and "name" not in claims


def test_authorize_insists_on_s256_and_a_known_user(sb: Sandbox) -> None:
    assert _authorize(sb, code_challenge_method="plain")["error"] == "invalid_request"
    assert _authorize(sb, code_challenge="")["error"] == "invalid_request"
    assert "AADSTS50034" in _authorize(sb, login_hint="nobody@acme.test")["error_description"]
    assert _authorize(sb, scope="openid Mail.Send.Everything")["error"] == "invalid_scope"
    query = _authorize(sb)
    wrong = _redeem(sb, query["code"], secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error_codes"] == [50148]
    assert _redeem(sb, query["code"], query["verifier"]).status_code == 200
    again = _redeem(sb, query["code"], query["verifier"]).json()
    assert again["error"] == "invalid_grant" and again["error_codes"] == [54005]
    unknown = _get(sb, sb.microsoft_settings()["MICROSOFT_AUTH_URL"] + "/oauth2/v2.0/authorize",
                   params={"client_id": "nope"})
    assert unknown.status_code == 400 and "AADSTS700016" in unknown.text


def test_scopes_beyond_the_consent_are_refused(sb: Sandbox) -> None:
    query = _authorize(sb, scope="openid offline_access Mail.ReadBasic")
    answer = _redeem(sb, query["code"], query["verifier"], scope="Calendars.Read")
    assert answer.json()["error_codes"] == [65001]


def test_delta_paging_shapes_select_and_prefer(sb: Sandbox) -> None:
    api = sb.microsoft_settings()["MICROSOFT_API_URL"]
    headers = {"Authorization": "Bearer " + _token(sb), "Prefer": "odata.maxpagesize=5000"}
    first = _get(sb, api + "me/mailFolders/inbox/messages/delta", headers=headers,
                 params={"$select": "internetMessageId,from,internetMessageHeaders"})
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=1000"
    body = first.json()
    assert "@odata.deltaLink" in body and "$deltatoken=" in body["@odata.deltaLink"]
    assert all(set(m) <= {"@odata.type", "@odata.etag", "id", "internetMessageId", "from"} for m in body["value"])
    small = _get(sb, api + "me/mailFolders/inbox/messages/delta", headers={**headers, "Prefer": "odata.maxpagesize=7"})
    assert len(small.json()["value"]) == 7 and "$skiptoken=" in small.json()["@odata.nextLink"]
    bad = _get(sb, api + "me/mailFolders/inbox/messages/delta", headers=headers, params={"$select": "body2"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "RequestBroker--ParseUri"
    bad_filter = _get(sb, api + "me/mailFolders/inbox/messages/delta", headers=headers,
                      params={"$filter": "subject eq 'x'"})
    assert bad_filter.status_code == 400
    no_window = _get(sb, api + "me/calendarView/delta", headers=headers)
    assert no_window.status_code == 400 and no_window.json()["error"]["code"] == "ErrorInvalidParameter"


def test_removed_items_and_sync_state_errors(sb: Sandbox) -> None:
    api = sb.microsoft_settings()["MICROSOFT_API_URL"]
    headers = {"Authorization": "Bearer " + _token(sb), "Prefer": "odata.maxpagesize=1000"}
    link = _get(sb, api + "me/contacts/delta", headers=headers).json()["@odata.deltaLink"]
    victim = sb.microsoft.live(ALICE, "contacts")[0]["id"]
    sb.microsoft.delete_contact(ALICE, victim)
    changes = _get(sb, link, headers=headers).json()
    assert changes["value"] == [{"id": victim, "@removed": {"reason": "deleted"}}]
    assert _get(sb, link, headers=headers).json()["value"] == changes["value"]  # a replayed link replays
    sb.microsoft.reset_sync_state(ALICE)
    gone = _get(sb, link, headers=headers)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "resyncRequired" and gone.headers["Location"]
    sb.microsoft.forget_sync_states()
    assert _get(sb, link, headers=headers).json()["error"]["code"] == "syncStateNotFound"


def test_batch_limits_and_parts(sb: Sandbox) -> None:
    api = sb.microsoft_settings()["MICROSOFT_API_URL"]
    headers = {"Authorization": "Bearer " + _token(sb)}
    event = sb.microsoft.live(ALICE, "events")[0]["id"]
    parts = [{"id": str(i), "method": "GET", "url": f"/me/events/{event}?$select=iCalUId"} for i in range(20)]
    parts[3]["url"] = "/me/events/missing"
    answer = requests.post(api + "$batch", json={"requests": parts}, headers=headers, verify=sb.ca_path, timeout=10)
    responses = {r["id"]: r for r in answer.json()["responses"]}
    assert responses["0"]["status"] == 200 and set(responses["0"]["body"]) == {"id", "iCalUId"}
    assert responses["3"]["status"] == 404
    too_many = requests.post(api + "$batch", json={"requests": [*parts, {**parts[0], "id": "x"}]}, headers=headers,
                             verify=sb.ca_path, timeout=10)
    assert too_many.status_code == 400
    calls = sb.microsoft.stats.snapshot()["calls"]
    assert calls["batch"] == 2 and calls["batch_parts"] == 20


def test_auth_errors_and_throttling_with_early_retry_detection(sb: Sandbox) -> None:
    api = sb.microsoft_settings()["MICROSOFT_API_URL"]
    assert _get(sb, api + "me").status_code == 401
    token = _token(sb)
    headers = {"Authorization": "Bearer " + token}
    sb.microsoft.faults.fail_next(1, "429", retry_after=30, endpoints=["me"])
    throttled = _get(sb, api + "me", headers=headers)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "30"
    assert _get(sb, api + "me", headers=headers).json()["mail"] == ALICE
    assert sb.microsoft.faults.early_retries == 1
    sb.microsoft.identity.expire_access_tokens()
    expired = _get(sb, api + "me", headers=headers)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_admin_api_mutates_and_reports(sb: Sandbox) -> None:
    admin = sb.base_url + "/_sandbox/microsoft"
    post = lambda path, body=None: requests.post(admin + path, json=body or {}, verify=sb.ca_path, timeout=10)  # noqa: E731
    assert post("/config", {"default_page_size": 3}).json()["default_page_size"] == 3
    made = post(f"/users/{ALICE}/messages/inbox", {"internetMessageId": "<a@b.test>",
                                                   "receivedDateTime": "2026-10-01T00:00:00Z"}).json()
    assert any(m["id"] == made["id"] for m in sb.microsoft.live(ALICE, "mail:inbox"))
    gone = requests.delete(f"{admin}/users/{ALICE}/messages/inbox/{made['id']}", verify=sb.ca_path, timeout=10)
    assert gone.json() == {"deleted": True}
    assert post("/faults", {"rules": [{"kind": "503", "count": 1}]}).json()["rules"][0]["kind"] == "503"
    assert post(f"/users/{ALICE}/revoke").json()["revoked"] == 0
    assert requests.get(admin + "/stats", verify=sb.ca_path, timeout=10).json()["http_requests"] == 0


def test_data_is_deterministic_and_shared_with_gmail(world: World) -> None:
    one, two = MicrosoftState(world, seed=world.seed), MicrosoftState(world, seed=world.seed)
    for collection in ("mail:inbox", "mail:sentitems", "events", "masters", "contacts"):
        assert one.live(ALICE, collection) == two.live(ALICE, collection)
    gmail_ids = {m.message_id for _, m in world.all_messages()}
    outlook = [m["internetMessageId"] for m in one.live(ALICE, "mail:inbox")]
    assert 0 < len(gmail_ids.intersection(outlook)) < len(outlook)
    bob = {m["internetMessageId"] for m in one.live("bob@acme.test", "mail:inbox")}
    assert bob & set(outlook), "some emails sit in two reps' mailboxes"
