"""The Outlook connectors against the Microsoft emulator over HTTPS, with tokens from real msal."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connectors import outlook_calendar, outlook_contacts, outlook_mail
from connectors.base import (
    ActivityObservation,
    ConnectorError,
    CursorExpired,
    Deletion,
    Endpoints,
    FetchContext,
    Page,
    PersonObservation,
    RateLimited,
    TransientError,
    Unauthorized,
)
from connectors.emails import normalize_email
from connectors.gmail_mapping import dedupe_key as gmail_dedupe_key
from connectors.gmail_mapping import headers_of
from connectors.graph_http import BATCH_LIMIT
from connectors.noise import is_calendar
from connectors.outlook_calendar_mapping import map_event
from connectors.registry import get_connector
from models.settings import ProviderSettings
from sandbox.graph_mailgen import iso
from sandbox.server import Sandbox
from sandbox.world import World, generate_world
from tokens.clients import client_for
from tokens.pkce import make_verifier, s256_challenge

pytestmark = pytest.mark.filterwarnings("ignore:Change your:DeprecationWarning")
REDIRECT = "http://127.0.0.1:9/oauth/callback/microsoft"
ALICE = "alice@acme.test"


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=3, size=600)


@pytest.fixture
def sandbox(world: World) -> Iterator[Sandbox]:
    box = Sandbox(world, tls=True).start()
    yield box
    box.stop()


def ms_token(box: Sandbox, user: str = ALICE) -> str:
    """Sign in as `user` through real msal: authorize (PKCE S256) and code redemption."""
    conf = box.microsoft_settings()
    provider = ProviderSettings(
        name="microsoft",
        client_id=conf["MICROSOFT_CLIENT_ID"],
        client_secret=conf["MICROSOFT_CLIENT_SECRET"],
        auth_url=conf["MICROSOFT_AUTH_URL"],
        token_url=conf["MICROSOFT_TOKEN_URL"],
        revoke_url="",
        api_url=conf["MICROSOFT_API_URL"],
    )
    client = client_for(provider, box.ca_path, 10)
    verifier = make_verifier()
    scopes = sorted({s for c in (outlook_mail, outlook_calendar, outlook_contacts) for s in c.scopes})
    url = client.authorize_url(
        redirect_uri=REDIRECT, scopes=scopes, state="s", code_challenge=s256_challenge(verifier), login_hint=user
    )
    answer = requests.get(url, allow_redirects=False, timeout=10, verify=box.ca_path)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    return client.exchange(code, redirect_uri=REDIRECT, code_verifier=verifier).access_token


def ctx_for(box: Sandbox, user: str = ALICE, **overrides) -> FetchContext:
    endpoints = Endpoints(api_url=box.microsoft_settings()["MICROSOFT_API_URL"], ca_bundle=box.ca_path, timeout=10)
    fields = {"now": box.world.now, "backfill_days": 365, "account": user}
    fields.update(overrides)
    return FetchContext(access_token=ms_token(box, user), endpoints=endpoints, **fields)


def full_pass(connector, stream: str, ctx: FetchContext, cursor=None, limit: int = 200) -> tuple[list[Page], dict]:
    """Pages until done, each cursor through a JSON round trip as the store would keep it."""
    pages = []
    for _ in range(limit):
        page = connector.fetch_page(stream, cursor, ctx)
        pages.append(page)
        cursor = json.loads(json.dumps(page.cursor))
        assert cursor == page.cursor
        if page.done:
            return pages, cursor
    raise AssertionError("the pass did not end")


def ids_of(pages: list[Page], kind=ActivityObservation) -> list[str]:
    return [o.external_id for p in pages for o in p.observations if isinstance(o, kind)]


def in_window(box: Sandbox, user: str, folder: str) -> list[dict]:
    oldest = iso((box.world.now - timedelta(days=365)).timestamp() * 1000)
    return [m for m in box.microsoft.live(user, f"mail:{folder}") if m["receivedDateTime"] >= oldest]


# -- registry and identity -------------------------------------------------------------------------------
def test_registered_with_narrow_scopes_and_whoami(sandbox: Sandbox) -> None:
    for name in ("outlook_mail", "outlook_calendar", "outlook_contacts"):
        connector = get_connector(name)
        assert connector.provider == "microsoft" and "User.Read" in connector.scopes
        assert not any(s.endswith(("ReadWrite", ".All")) for s in connector.scopes)
    assert outlook_mail.scopes == ("Mail.ReadBasic", "User.Read")
    assert outlook_mail.whoami(ctx_for(sandbox, "bob@acme.test")) == "bob@acme.test"


# -- mail -------------------------------------------------------------------------------------------------
def test_mail_full_pass_ten_thousand_in_ten_calls(sandbox: Sandbox) -> None:
    state = sandbox.microsoft
    for message in state.live(ALICE, "mail:inbox"):
        state.delete_message(ALICE, "inbox", message["id"])
    state.add_bulk_messages(ALICE, "inbox", 10_000)
    state.stats.reset()
    pages, cursor = full_pass(outlook_mail, "inbox", ctx_for(sandbox))
    ids = ids_of(pages)
    assert len(ids) == len(set(ids)) == 10_000
    assert sum(p.api_calls for p in pages) == len(pages) == 10
    assert state.stats.snapshot()["calls"]["mail_delta"] == 10
    assert all(p.full_resync for p in pages) and cursor["phase"] == "incremental"
    assert all(i.startswith("inbox:") for i in ids)


def test_mail_full_pass_maps_every_message_once_within_the_window(sandbox: Sandbox) -> None:
    ctx = ctx_for(sandbox)
    for stream, folder in (("inbox", "inbox"), ("sent", "sentitems")):
        pages, _ = full_pass(outlook_mail, stream, ctx)
        seen = ids_of(pages) + [r.external_id for p in pages for r in p.rejections if r.reason == "no_date"]
        expected = in_window(sandbox, ALICE, folder)
        assert sorted(set(seen)) == sorted(f"{stream}:{m['id']}" for m in expected)
        assert len(pages) == max(1, math.ceil(len(expected) / 1000))


def test_same_email_in_gmail_and_outlook_has_one_dedupe_key(sandbox: Sandbox, world: World) -> None:
    pages, _ = full_pass(outlook_mail, "inbox", ctx_for(sandbox))
    outlook_keys = {o.dedupe_key for p in pages for o in p.observations if isinstance(o, ActivityObservation)}
    gmail_keys = {
        gmail_dedupe_key(headers_of({"payload": {"headers": [{"name": k, "value": v} for k, v in m.headers]}}))
        for owner, m in world.all_messages()
    }
    shared = outlook_keys & gmail_keys
    assert len(shared) > 20
    assert not any(k.startswith("<") or k.endswith(">") or " " in k for k in outlook_keys)


def test_mail_noise_is_the_automated_sender(sandbox: Sandbox) -> None:
    pages, _ = full_pass(outlook_mail, "inbox", ctx_for(sandbox))
    observations = [o for p in pages for o in p.observations if isinstance(o, ActivityObservation)]
    automated = [o for o in observations if o.noise == "automated"]
    assert automated and all(any(p.role == "from" for p in o.participants) for o in automated)
    assert {o.kind for o in observations} == {"email"}


def test_mail_incremental_after_mutations(sandbox: Sandbox) -> None:
    ctx = ctx_for(sandbox)
    _, cursor = full_pass(outlook_mail, "inbox", ctx)
    state = sandbox.microsoft
    gone = state.live(ALICE, "mail:inbox")[0]["id"]
    state.delete_message(ALICE, "inbox", gone)
    new_id = state.add_message(
        ALICE,
        "inbox",
        {
            "internetMessageId": " <fresh-1@globex.test> ",
            "subject": "Hello",
            "from": {"emailAddress": {"name": "Dana", "address": "Dana@Globex.test"}},
            "toRecipients": [
                {"emailAddress": {"name": "", "address": ALICE}},
                {"emailAddress": {"address": "not an address"}},
            ],
            "receivedDateTime": iso(sandbox.world.now.timestamp() * 1000),
            "sentDateTime": "2026-10-31T09:00:00Z",
        },
    )
    pages, cursor = full_pass(outlook_mail, "inbox", ctx, cursor)
    assert len(pages) == 1 and pages[0].api_calls == 1 and not pages[0].full_resync
    by_id = {o.external_id: o for o in pages[0].observations}
    assert isinstance(by_id[f"inbox:{gone}"], Deletion)
    fresh = by_id[f"inbox:{new_id}"]
    assert isinstance(fresh, ActivityObservation) and fresh.dedupe_key == "fresh-1@globex.test"
    assert {(p.role, p.email) for p in fresh.participants} == {("from", "dana@globex.test"), ("to", ALICE)}
    assert fresh.occurred_at.isoformat() == "2026-10-31T09:00:00+00:00"
    assert [r.external_id for r in pages[0].rejections] == [f"inbox:{new_id}"]
    again, _ = full_pass(outlook_mail, "inbox", ctx, cursor)
    assert again[0].observations == [] and again[0].done


def test_expired_and_reset_sync_state_are_cursor_expired(sandbox: Sandbox) -> None:
    ctx = ctx_for(sandbox)
    _, cursor = full_pass(outlook_mail, "sent", ctx)
    sandbox.microsoft.forget_sync_states()
    with pytest.raises(CursorExpired, match="syncStateNotFound"):
        outlook_mail.fetch_page("sent", cursor, ctx)
    _, cursor = full_pass(outlook_mail, "sent", ctx)
    sandbox.microsoft.reset_sync_state(ALICE)
    with pytest.raises(CursorExpired, match="410"):
        outlook_mail.fetch_page("sent", cursor, ctx)
    with pytest.raises(CursorExpired):
        outlook_mail.fetch_page("sent", {"phase": "history", "history_id": "1"}, ctx)


def test_a_link_to_another_origin_is_never_followed(sandbox: Sandbox) -> None:
    ctx = ctx_for(sandbox)
    with pytest.raises(CursorExpired, match="origin"):
        outlook_mail.fetch_page("inbox", {"phase": "incremental", "link": "https://evil.test/steal?$deltatoken=x"}, ctx)


def test_throttling_and_errors_map_for_the_sync_layer(sandbox: Sandbox) -> None:
    ctx = ctx_for(sandbox)
    faults = sandbox.microsoft.faults
    faults.fail_next(1, "429", retry_after=7, endpoints=["mail_delta"])
    with pytest.raises(RateLimited) as limited:
        outlook_mail.fetch_page("inbox", None, ctx)
    assert limited.value.retry_after == 7 and "ApplicationThrottled" in str(limited.value)
    faults.fail_next(1, "503", retry_after=3, endpoints=["mail_delta"])
    with pytest.raises(RateLimited) as busy:
        outlook_mail.fetch_page("inbox", None, ctx)
    assert busy.value.retry_after == 3
    faults.fail_next(1, "502html", endpoints=["mail_delta"])
    with pytest.raises(TransientError) as html:
        outlook_mail.fetch_page("inbox", None, ctx)
    assert "HTTP 502" in str(html.value) and "non-JSON error body: '<!DOCTYPE html>" in str(html.value)
    faults.fail_next(1, "403", endpoints=["mail_delta"])
    with pytest.raises(ConnectorError, match="403 ErrorAccessDenied"):
        outlook_mail.fetch_page("inbox", None, ctx)
    sandbox.microsoft.identity.expire_access_tokens()
    with pytest.raises(Unauthorized) as refused:
        outlook_mail.fetch_page("inbox", None, ctx)
    assert ctx.access_token not in str(refused.value)
    with pytest.raises(ConnectorError, match="no stream"):
        outlook_mail.fetch_page("drafts", None, ctx)


def test_a_repeated_next_link_is_an_error_not_a_loop(sandbox: Sandbox) -> None:
    from sandbox.http import HttpServer, Request, Response, json_response

    def looping(req: Request) -> Response:
        return json_response({"value": [], "@odata.nextLink": f"{req.base_url}{req.path}?$skiptoken=same"})

    server = HttpServer(looping)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}/v1.0/"
        ctx = FetchContext(access_token="t", endpoints=Endpoints(base), account=ALICE, now=sandbox.world.now)
        first = outlook_contacts.fetch_page("contacts", None, ctx)
        with pytest.raises(ConnectorError, match="same nextLink"):
            outlook_contacts.fetch_page("contacts", first.cursor, ctx)
    finally:
        server.stop()


def in_calendar_window(box: Sandbox, event: dict) -> bool:
    start = (box.world.now - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%S")
    end = (box.world.now + timedelta(days=outlook_calendar.FUTURE_DAYS)).strftime("%Y-%m-%dT%H:%M:%S")
    return event["start"]["dateTime"][:19] < end and event["end"]["dateTime"][:19] > start


# -- calendar ---------------------------------------------------------------------------------------------
def test_calendar_full_pass_and_occurrence_keys(sandbox: Sandbox) -> None:
    user = "carol@acme.test"
    state = sandbox.microsoft
    state.stats.reset()
    pages, cursor = full_pass(outlook_calendar, "events", ctx_for(sandbox, user))
    events = {e["id"]: e for e in state.live(user, "events") if in_calendar_window(sandbox, e)}
    observed = [o for p in pages for o in p.observations]
    assert sorted(o.external_id for o in observed) == sorted(events)
    wanted = {e["seriesMasterId"] for e in events.values() if e["seriesMasterId"]}
    masters = {m["id"]: m["iCalUId"] for m in state.live(user, "masters") if m["id"] in wanted}
    assert cursor["renew_after"] and cursor["phase"] == "incremental"
    occurrences = [o for o in observed if events[o.external_id]["seriesMasterId"]]
    assert occurrences, "the world has recurring meetings"
    for obs in occurrences:
        event = events[obs.external_id]
        if isinstance(obs, ActivityObservation):
            assert obs.dedupe_key == f"{masters[event['seriesMasterId']]}@{event['originalStart']}"
    calls = state.stats.snapshot()["calls"]
    assert calls["calendar_delta"] == len(pages) and calls["batch"] == sum(p.api_calls for p in pages) - len(pages)
    assert calls["batch_parts"] == len(masters)
    cancelled = [o for o in observed if events[o.external_id]["isCancelled"]]
    assert all(isinstance(o, Deletion) for o in cancelled)
    meetings = [o for o in observed if isinstance(o, ActivityObservation)]
    assert {o.kind for o in meetings} == {"meeting"}
    assert any(p.declined for o in meetings for p in o.participants)
    by_calendar = {o.external_id for o in meetings if is_calendar(organizer_of(events[o.external_id]))}
    assert all(any(p.role == "organizer" for p in o.participants) for o in meetings if o.external_id not in by_calendar)
    assert all(not any(p.role == "organizer" for p in o.participants) for o in meetings if o.external_id in by_calendar)


def organizer_of(event: dict[str, object]) -> str:
    """The organizer's address as Graph serves it (lowercased)."""
    organizer = event.get("organizer")
    address = organizer.get("emailAddress") if isinstance(organizer, dict) else None
    return str(address.get("address") or "").lower() if isinstance(address, dict) else ""


def test_calendar_shares_icaluids_with_google_calendar(sandbox: Sandbox, world: World) -> None:
    import threading
    import time

    from sandbox.gcal_data import calendar_store

    store = calendar_store(world, lock=threading.RLock(), clock=time.time)
    google = {e.ical_uid for cal in store.calendars.values() for e in cal.events.values()}
    pages, _ = full_pass(outlook_calendar, "events", ctx_for(sandbox))
    keys = {o.dedupe_key.split("@2")[0] for p in pages for o in p.observations if isinstance(o, ActivityObservation)}
    assert keys & google


def test_calendar_incremental_removed_and_cancelled(sandbox: Sandbox) -> None:
    user = "bob@acme.test"
    ctx = ctx_for(sandbox, user)
    _, cursor = full_pass(outlook_calendar, "events", ctx)
    state = sandbox.microsoft
    single = [e for e in state.live(user, "events") if e["type"] == "singleInstance" and not e["isCancelled"]]
    state.delete_event(user, single[0]["id"])
    state.cancel_event(user, single[1]["id"])
    pages, cursor = full_pass(outlook_calendar, "events", ctx, cursor)
    by_id = {o.external_id: o for p in pages for o in p.observations}
    assert isinstance(by_id[single[0]["id"]], Deletion) and isinstance(by_id[single[1]["id"]], Deletion)
    assert not any(p.full_resync for p in pages)


def test_calendar_window_renewal_starts_a_full_pass(sandbox: Sandbox) -> None:
    ctx = ctx_for(sandbox)
    _, cursor = full_pass(outlook_calendar, "events", ctx)
    later = replace(ctx, now=ctx.now + timedelta(days=outlook_calendar.RENEW_DAYS + 1))
    page = outlook_calendar.fetch_page("events", cursor, later)
    assert page.full_resync and page.cursor["renew_after"] > cursor["renew_after"]


def test_calendar_batch_throttling_keeps_progress_or_is_rate_limited(sandbox: Sandbox) -> None:
    ctx = ctx_for(sandbox, "carol@acme.test")
    faults = sandbox.microsoft.faults
    faults.fail_next(1, "429", retry_after=11, scope="part", endpoints=["event_get"])
    first = outlook_calendar.fetch_page("events", None, ctx)
    assert first.retry_after == 11 and first.observations == [] and first.cursor["masters"]
    pages, _ = full_pass(outlook_calendar, "events", ctx, first.cursor)
    unthrottled, _ = full_pass(outlook_calendar, "events", ctx)
    assert sorted(ids_of(pages)) == sorted(ids_of(unthrottled))
    faults.fail_next(BATCH_LIMIT, "429", retry_after=11, scope="part", endpoints=["event_get"])
    with pytest.raises(RateLimited) as caught:  # no master resolved: nothing to keep
        full_pass(outlook_calendar, "events", ctx)
    assert caught.value.retry_after == 11


# -- contacts ---------------------------------------------------------------------------------------------
def test_contacts_full_pass_and_incremental(sandbox: Sandbox) -> None:
    ctx = ctx_for(sandbox)
    pages, cursor = full_pass(outlook_contacts, "contacts", ctx)
    live = {c["id"]: c for c in sandbox.microsoft.live(ALICE, "contacts")}
    people = [o for p in pages for o in p.observations if isinstance(o, PersonObservation)]
    assert sorted(o.external_id for o in people) == sorted(live)
    for person in people:
        source = live[person.external_id]
        assert person.kind == "contact" and person.name == source["displayName"]
        assert person.emails == tuple(normalize_email(e["address"]) for e in source["emailAddresses"])
        assert person.phones == tuple(p for p in [*source["businessPhones"], source["mobilePhone"]] if p)
        assert person.company == source["companyName"]
    assert any(len(p.emails) > 1 for p in people)
    sandbox.microsoft.delete_contact(ALICE, people[0].external_id)
    sandbox.microsoft.put_contact(
        ALICE,
        {
            "id": "c-new",
            "displayName": "Zed Zhou",
            "emailAddresses": [{"address": "Zed@Initech.test"}, {"address": "bogus"}],
            "businessPhones": ["+1 415 555 0100"],
            "mobilePhone": None,
            "homePhones": [],
            "companyName": "Initech",
        },
    )
    pages, _ = full_pass(outlook_contacts, "contacts", ctx, cursor)
    by_id = {o.external_id: o for p in pages for o in p.observations}
    assert isinstance(by_id[people[0].external_id], Deletion)
    assert by_id["c-new"].emails == ("zed@initech.test",) and by_id["c-new"].phones == ("+1 415 555 0100",)
    assert [r.reason for p in pages for r in p.rejections] == ["no_at"]


def test_a_mirrored_google_invitation_names_its_calendar_which_is_not_a_person() -> None:
    event = {
        "id": "AAMk1",
        "iCalUId": "66doh7mrd3vvpe51d9pkjar9d5@google.com",
        "start": {"dateTime": "2026-10-01T10:00:00.0000000", "timeZone": "UTC"},
        "organizer": {"emailAddress": {"address": "c_6f91dacd345b2b80@group.calendar.google.com", "name": "Team"}},
        "attendees": [
            {"type": "required", "status": {"response": "accepted"}, "emailAddress": {"address": "ana@cedar.test"}},
        ],
    }
    observation, rejected = map_event(event, {})
    assert isinstance(observation, ActivityObservation) and not rejected
    assert [(p.role, p.email) for p in observation.participants] == [("attendee", "ana@cedar.test")]
