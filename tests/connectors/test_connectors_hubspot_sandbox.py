"""The HubSpot connector over real HTTPS (hubspot-api-client, urllib3) against the HubSpot emulator."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import secrets
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connectors import hubspot
from connectors.base import (
    JSON,
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
from connectors.hubspot_crm import ARCHIVED_RECHECK_MS, OVERLAP_MS
from connectors.registry import get_connector
from sandbox.hubspot_data import generate_portal
from sandbox.server import Sandbox
from sandbox.world import World, generate_world

REDIRECT = "http://127.0.0.1:9/oauth/callback/hubspot"
ENGAGEMENT_PREFIX = {"calls": "call", "meetings": "meeting", "emails": "email"}


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=7, size=900)


@pytest.fixture(scope="module")
def served(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(world, tls=True, cert_dir=str(tmp_path_factory.getbasetemp() / "hubspot-ca")) as sandbox:
        yield sandbox


@pytest.fixture
def sb(served: Sandbox) -> Sandbox:
    served.hubspot.reset()
    return served


def access_token(sb: Sandbox, user: str) -> str:
    """Sign in as `user` through the emulator's install page and token endpoint (PKCE S256)."""
    settings = sb.hubspot_settings()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    consent = requests.get(
        settings["HUBSPOT_AUTH_URL"],
        params={
            "client_id": settings["HUBSPOT_CLIENT_ID"],
            "redirect_uri": REDIRECT,
            "scope": " ".join(hubspot.scopes),
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "login_hint": user,
        },
        allow_redirects=False,
        verify=sb.ca_path,
        timeout=10,
    )
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(consent.headers["location"]).query)["code"][0]
    answer = requests.post(
        settings["HUBSPOT_TOKEN_URL"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": settings["HUBSPOT_CLIENT_ID"],
            "client_secret": settings["HUBSPOT_CLIENT_SECRET"],
        },
        verify=sb.ca_path,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def ctx_for(sb: Sandbox, user: str = "alice@acme.test", **overrides: Any) -> FetchContext:
    endpoints = Endpoints(sb.hubspot_settings()["HUBSPOT_API_URL"], sb.ca_path, 10)
    fields: dict[str, Any] = {"now": sb.world.now, "page_size": 500} | overrides
    return FetchContext(access_token=access_token(sb, user), endpoints=endpoints, account=user, **fields)


def run(stream: str, ctx: FetchContext, cursor: JSON | None = None, limit: int = 500) -> list[Page]:
    """Pages until done; every cursor goes through JSON on the way, as the store keeps it."""
    pages = []
    for _ in range(limit):
        page = hubspot.fetch_page(stream, cursor, ctx)
        pages.append(page)
        cursor = json.loads(json.dumps(page.cursor))
        assert cursor == page.cursor
        if page.done:
            return pages
    raise AssertionError("the pass never finished")


def observed(pages: list[Page], kind: type) -> list[str]:
    return [o.external_id for p in pages for o in p.observations if isinstance(o, kind)]


def live(sb: Sandbox, object_type: str) -> dict[int, Any]:
    with sb.hubspot.lock:
        return {i: r for i, r in sb.hubspot.portal.records[object_type].items() if not r.archived}


def requests_made(sb: Sandbox) -> int:
    return int(sb.hubspot.stats_snapshot()["http_requests"])


# -- identity ------------------------------------------------------------------------------------------


def test_registered_and_whoami_is_the_token_user(sb: Sandbox) -> None:
    assert get_connector("hubspot") is hubspot and hubspot.provider == "hubspot"
    assert "crm.objects.contacts.read" in hubspot.scopes and all("write" not in s for s in hubspot.scopes)
    assert hubspot.whoami(ctx_for(sb, "carol@acme.test")) == "carol@acme.test"


# -- full passes ---------------------------------------------------------------------------------------


def test_contacts_full_pass_serves_every_contact_once(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    before = requests_made(sb)
    pages = run("contacts", ctx)
    contacts = live(sb, "contacts")
    people = observed(pages, PersonObservation)
    assert sorted(people, key=int) == [str(i) for i in sorted(contacts)]
    merged = {m for r in contacts.values() for m in (r.properties.get("hs_merged_object_ids") or "").split(";") if m}
    assert merged and set(observed(pages, Deletion)) == merged
    assert all(p.full_resync for p in pages) and pages[-1].cursor["phase"] == "idle"
    assert sum(p.api_calls for p in pages) == requests_made(sb) - before
    calls = sb.hubspot.stats_snapshot()["calls"]
    assert calls["search"] <= math.ceil(len(contacts) / 199) + 1
    assert calls.get("batch_read", 0) <= len(pages)  # company names: one batch of <= 100 per page here
    assert {r.reason for p in pages for r in p.rejections} <= {"no_at", "bad_local_part", "bad_domain"}


def grow_engagements(sb: Sandbox, stream: str, count: int, tied: int = 0) -> None:
    """`count` more engagements a day old, linked to contacts; `tied` of them share one modification time."""
    with sb.hubspot.lock:
        store = sb.hubspot.store
        contacts = sorted(live(sb, "contacts"))
        base = sb.hubspot.now_ms() - 86_400_000
        made = [
            store.create(
                stream,
                {"hs_timestamp": str(base), "hubspot_owner_id": None},
                {"contacts": contacts[i % 7 :: 97]},
                base + i,
            ).id
            for i in range(count)
        ]
        store.set_modified(stream, made[100 : 100 + tied], base + 100)


@pytest.mark.parametrize(("stream", "tied"), [("calls", 0), ("meetings", 450), ("emails", 0)])
def test_engagement_pages_fill_whole_association_reads(sb: Sandbox, stream: str, tied: int) -> None:
    grow_engagements(sb, stream, 2300, tied)  # ties: more than a search's 200 at one time, across pages
    ctx = ctx_for(sb)  # page size 500: engagement pages of 5 searches (1,000 records), one association read
    sb.hubspot.reset_stats()
    pages = run(stream, ctx)
    records = live(sb, stream)
    prefix = ENGAGEMENT_PREFIX[stream]
    served = observed(pages, ActivityObservation) + observed(pages, Deletion)
    assert sorted(served) == sorted(f"{prefix}:{i}" for i in records)  # each once
    calls = sb.hubspot.stats_snapshot()["calls"]
    assert len(pages) == math.ceil(len(records) / 1000) == calls["associations"] == 3
    # each search after a page's first repeats the last one's newest record (modified >= anchor): 199 new
    assert calls["search"] <= math.ceil(len(records) / 199) + (2 if tied else 0)  # a tie run: in and out
    assert sum(p.api_calls for p in pages) == calls["search"] + 3
    assert all(len(p.observations) <= 1000 for p in pages)  # one association read's worth
    assert tied or all(len(p.observations) >= 990 for p in pages[:-1])  # (finding a tie run yields nothing)
    activities = {o.external_id: o for p in pages for o in p.observations if isinstance(o, ActivityObservation)}
    for record_id, record in records.items():
        activity = activities.get(f"{prefix}:{record_id}")
        if activity is None:
            continue
        linked = {p.person_ref for p in activity.participants if p.role == "associated"}
        assert linked == {f"hubspot:{c}" for c in record.associations.get("contacts", ())}


def grow_contacts(sb: Sandbox, companies: int, contacts: int, spread: int) -> None:
    """More companies, and contacts a day old spread over the first `spread` companies (every fifth with
    `company` text of its own; the first 25 by the portal's companies, the rest by those made here)."""
    with sb.hubspot.lock:
        store = sb.hubspot.store
        base = sb.hubspot.now_ms() - 86_400_000
        for i in range(companies):
            store.create("companies", {"name": f"Firm {i}"}, at_ms=base + i)
        firms = sorted(live(sb, "companies"))[:spread]
        for i in range(contacts):
            firm = firms[i % len(firms)]
            props = {"email": f"p{i}@firm{firm}.test", "company": f"Own {i}" if i % 5 == 0 else None}
            store.create(
                "contacts", props | {"associatedcompanyid": str(firm)}, {"companies": [firm]}, base + 10_000 + i
            )


def company_of_each_contact(sb: Sandbox) -> dict[str, str | None]:
    """What the contacts stream should say of each live contact: its own company text, else its company's name."""
    firms = {i: r.properties.get("name") for i, r in live(sb, "companies").items()}
    out: dict[str, str | None] = {}
    for contact_id, record in live(sb, "contacts").items():
        cid = record.properties.get("associatedcompanyid") or ""
        out[str(contact_id)] = record.properties.get("company") or (firms.get(int(cid)) if cid.isdigit() else None)
    return out


def last_company(pages: list[Page]) -> dict[str, str | None]:
    """Each contact's company as the last observation of it says (later pages win, as in the store)."""
    return {o.external_id: o.company for p in pages for o in p.observations if isinstance(o, PersonObservation)}


def test_contact_company_names_read_once_per_pass_from_a_directory(sb: Sandbox) -> None:
    grow_contacts(sb, companies=60, contacts=900, spread=100)
    sb.hubspot.reset_stats()
    pages = run("contacts", ctx_for(sb, page_size=200))  # one search a page: 6 pages
    assert last_company(pages) == company_of_each_contact(sb)
    served = sb.hubspot.store.served
    firms = live(sb, "companies")
    assert {served[("companies", i)] for i in firms} == {1}  # every company read once: the directory (103)
    calls = sb.hubspot.stats_snapshot()["calls"]
    assert calls.get("batch_read", 0) == 0
    assert calls["search"] == len(pages) + 1 + 1  # the contacts, the directory, the walk's end check
    assert sum(p.api_calls for p in pages) == calls["search"] and len(pages) == 6
    kept = [p.cursor.get("companies") for p in pages]
    assert kept[-1] is None and all(k is not None and len(k["names"]) == len(firms) for k in kept[:-1])


def test_contact_company_names_of_a_big_portal_are_batch_read_once_each(sb: Sandbox) -> None:
    grow_contacts(sb, companies=1100, contacts=1200, spread=400)  # 1,143 companies: too many for a directory
    sb.hubspot.reset_stats()
    pages = run("contacts", ctx_for(sb, page_size=200))
    assert last_company(pages) == company_of_each_contact(sb)
    served = sb.hubspot.store.served
    firms = sorted(live(sb, "companies"))
    named = {int(cid) for c in live(sb, "contacts").values() if not c.properties.get("company")
             and (cid := c.properties.get("associatedcompanyid"))}  # fmt: skip
    assert max(served[("companies", i)] for i in firms) == 1  # read at most once in the pass
    assert {i for i in firms if served[("companies", i)]} == named | set(firms[:200])  # the one search's 200
    calls = sb.hubspot.stats_snapshot()["calls"]
    assert calls["search"] == len(pages) + 1 + 1  # the contacts, the one directory search, the end check
    assert calls["batch_read"] <= len(pages) + 1
    assert all(len(p.cursor.get("companies", {}).get("names", ())) <= 1000 for p in pages)


def test_a_company_renamed_during_the_pass_reaches_contacts_sent_before(sb: Sandbox) -> None:
    grow_contacts(sb, companies=10, contacts=800, spread=30)
    ctx = ctx_for(sb, page_size=200)
    first = hubspot.fetch_page("contacts", None, ctx)
    contacts = live(sb, "contacts")
    named = [
        (str(cid), o.external_id)
        for o in first.observations
        if isinstance(o, PersonObservation)
        and not contacts[int(o.external_id)].properties.get("company")
        and (cid := contacts[int(o.external_id)].properties.get("associatedcompanyid"))
    ]
    renamed = max((cid for cid, _ in named), key=lambda c: sum(1 for c2, _ in named if c2 == c))
    sent = {contact for cid, contact in named if cid == renamed}
    assert first.cursor["companies"]["names"][renamed] == live(sb, "companies")[int(renamed)].properties["name"]
    with sb.hubspot.lock:
        sb.hubspot.store.update("companies", int(renamed), {"name": "Firm Nine"})
    sb.hubspot.reset_stats()
    rest = run("contacts", ctx, json.loads(json.dumps(first.cursor)))
    assert last_company([first, *rest]) == company_of_each_contact(sb)
    assert {last_company(rest)[c] for c in sent} == {"Firm Nine"}  # re-sent at the walk's end
    calls = sb.hubspot.stats_snapshot()["calls"]
    assert calls["associations"] == 1 and calls["batch_read"] == 1  # the renamed company's contacts


def test_owners_are_user_records_listed_in_one_call_and_archived_ones_left_to_the_sweep(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    sb.hubspot.reset_stats()
    pages = run("owners", ctx)
    with sb.hubspot.lock:
        owners = dict(sb.hubspot.portal.owners)
    users = [o for p in pages for o in p.observations if isinstance(o, PersonObservation)]
    assert {u.emails for u in users} == {(o.email,) for o in owners.values() if not o.archived}
    assert {u.kind for u in users} == {"user"}
    assert observed(pages, Deletion) == []  # a full pass: its end sweeps what it did not see
    assert all(p.full_resync for p in pages) and requests_made(sb) == 1


def test_an_unchanged_owner_is_not_sent_again_and_a_vanished_one_is_a_deletion(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    done = run("owners", ctx)[-1].cursor
    sb.hubspot.reset_stats()
    quiet = run("owners", ctx, done)
    assert [p.observations for p in quiet] == [[]] and requests_made(sb) == 1
    with sb.hubspot.lock:
        live_owners = sorted(i for i, o in sb.hubspot.portal.owners.items() if not o.archived)
        sb.hubspot.portal.owners[live_owners[0]].archived = True
        sb.hubspot.portal.owners[live_owners[1]].last_name = "Renamed"
    again = run("owners", ctx, quiet[-1].cursor)
    assert not any(p.full_resync for p in again)
    assert observed(again, Deletion) == [f"owner:{live_owners[0]}"]
    assert observed(again, PersonObservation) == [f"owner:{live_owners[1]}"]


def test_logged_emails_share_the_mailbox_message_id(sb: Sandbox, world: World) -> None:
    pages = run("emails", ctx_for(sb))
    keys = {o.dedupe_key for p in pages for o in p.observations if isinstance(o, ActivityObservation)}
    mailbox_ids = {m.message_id.strip("<>") for msgs in world.mailboxes.values() for m in msgs if m.message_id}
    assert keys & mailbox_ids
    assert any(k.startswith("hubspot:email:") for k in keys)


# -- the search cap ------------------------------------------------------------------------------------


def test_fifteen_thousand_contacts_with_many_equal_times_are_each_served_once(sb: Sandbox, world: World) -> None:
    sb.hubspot.reset(generate_portal(world, extra_contacts=15_000, tie_size=350))
    with sb.hubspot.lock:
        bulk = sorted(
            i for i, r in sb.hubspot.portal.records["contacts"].items() if r.properties.get("firstname") == "Bulk"
        )
        sb.hubspot.store.set_modified("contacts", bulk[::2][:10_500] + bulk[1::2][:3000], sb.hubspot.now_ms() - 5000)
    pages = run("contacts", ctx_for(sb), limit=200)
    people = observed(pages, PersonObservation)
    assert len(people) == len(set(people)) == len(live(sb, "contacts")) > 15_000
    stats = sb.hubspot.stats_snapshot()
    assert "400" not in stats["statuses"]  # never paged past the 10,000-result cap
    assert stats["calls"]["search"] <= math.ceil(len(people) / 200) * 1.2 + 5  # ties cost a few extra


# -- incremental -----------------------------------------------------------------------------------------


def test_incremental_contacts_after_create_update_archive_merge(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    done = run("contacts", ctx)[-1].cursor
    store = sb.hubspot.store
    with sb.hubspot.lock:
        ids = sorted(live(sb, "contacts"))
        made = store.create("contacts", {"email": "fresh@newco.test", "firstname": "Fresh"})
        store.update("contacts", ids[0], {"lastname": "Renamed"})
        store.archive("contacts", ids[1])
        store.merge("contacts", ids[2], ids[3])
    hwm = done["scan"]["hwm"]
    pages = run("contacts", ctx, done)
    assert not any(p.full_resync for p in pages) and pages[-1].done
    people = {o.external_id: o for p in pages for o in p.observations if isinstance(o, PersonObservation)}
    assert {str(made.id), str(ids[0]), str(ids[2])} <= set(people)
    assert people[str(ids[2])].merged_from == (str(ids[3]),)
    assert {str(ids[1]), str(ids[3])} <= set(observed(pages, Deletion))
    with sb.hubspot.lock:
        others = [sb.hubspot.portal.records["contacts"][int(i)] for i in people if int(i) not in (made.id, *ids[:4])]
    assert all(r.updated_ms >= hwm - OVERLAP_MS for r in others)  # only the re-read minute besides
    quiet = run("contacts", ctx, pages[-1].cursor)  # nothing new: the overlaps bring back only what was sent
    assert [o for p in quiet for o in p.observations] == []


def test_an_unchanged_engagement_stream_costs_one_search(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    done = run("calls", ctx)[-1].cursor
    sb.hubspot.reset_stats()
    quiet = run("calls", ctx, done)
    assert [o for p in quiet for o in p.observations] == []
    assert sb.hubspot.stats_snapshot()["calls"] == {"search": 1}  # no archived list, no association read
    with sb.hubspot.lock:
        newest = max(live(sb, "calls").values(), key=lambda r: (r.updated_ms, r.id))
        sb.hubspot.store.update("calls", newest.id, {"hs_call_title": "Again"})  # inside the re-read minute
        gone = sb.hubspot.store.archive("calls", sorted(live(sb, "calls"))[0])
        late = sorted(live(sb, "calls"))[1]  # a change the index showed late: stamped inside the re-read minute
        sb.hubspot.store.set_modified("calls", [late], done["scan"]["hwm"] - OVERLAP_MS // 2)
    changed = run("calls", ctx, quiet[-1].cursor)
    assert sorted(observed(changed, ActivityObservation)) == sorted([f"call:{newest.id}", f"call:{late}"])
    assert observed(changed, Deletion) == [f"call:{gone.id}"]
    sb.hubspot.reset_stats()
    assert [o for p in run("calls", ctx, changed[-1].cursor) for o in p.observations] == []
    assert sb.hubspot.stats_snapshot()["calls"] == {"search": 1}


def test_an_archive_alone_shows_in_the_live_count_and_is_read_from_the_archived_list(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    done = run("meetings", ctx)[-1].cursor
    with sb.hubspot.lock:
        oldest = sorted(live(sb, "meetings"))[0]  # modified long ago: no search shows it changing
        sb.hubspot.store.archive("meetings", oldest)
    sb.hubspot.reset_stats()
    pages = run("meetings", ctx, done)
    assert observed(pages, Deletion) == [f"meeting:{oldest}"] and observed(pages, ActivityObservation) == []
    assert sb.hubspot.stats_snapshot()["calls"] == {"search": 1, "list": 1}


def test_the_archived_list_is_read_hourly_whatever_the_count_says(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    done = run("meetings", ctx)[-1].cursor
    sb.hubspot.reset_stats()
    stale = run("meetings", ctx, {**done, "archived_since": done["archived_since"] - ARCHIVED_RECHECK_MS})
    assert sb.hubspot.stats_snapshot()["calls"] == {"search": 1, "list": 1}
    sb.hubspot.reset_stats()
    run("meetings", ctx, stale[-1].cursor)  # listed just now: the count alone decides again
    assert sb.hubspot.stats_snapshot()["calls"] == {"search": 1}


def test_more_changes_than_one_answer_holds_are_walked_in_order(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    done = run("contacts", ctx)[-1].cursor
    with sb.hubspot.lock:
        made = [sb.hubspot.store.create("contacts", {"email": f"new{i}@bulk.test"}).id for i in range(250)]
    pages = run("contacts", ctx, done)
    assert {str(i) for i in made} <= set(observed(pages, PersonObservation))
    assert len(observed(pages, PersonObservation)) == len(set(observed(pages, PersonObservation)))


def test_a_record_deleted_and_restored_at_its_old_time_is_sent_again(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    done = run("calls", ctx)[-1].cursor
    with sb.hubspot.lock:
        newest = max(live(sb, "calls").values(), key=lambda r: (r.updated_ms, r.id))
        stamp = newest.updated_ms  # read again by every run's re-read minute
        sb.hubspot.store.archive("calls", newest.id)
    archived = run("calls", ctx, done)
    assert observed(archived, Deletion) == [f"call:{newest.id}"]
    with sb.hubspot.lock:
        sb.hubspot.store.restore("calls", newest.id)
        sb.hubspot.store.set_modified("calls", [newest.id], stamp)  # back as it was, modification time too
    assert observed(run("calls", ctx, archived[-1].cursor), ActivityObservation) == [f"call:{newest.id}"]


def test_null_properties_are_tolerated(sb: Sandbox) -> None:
    with sb.hubspot.lock:
        empty = sb.hubspot.store.create("contacts", {"email": None, "firstname": None, "phone": None})
        bare = sb.hubspot.store.create("calls", {"hs_timestamp": None, "hubspot_owner_id": None})
    people = {o.external_id: o for p in run("contacts", ctx_for(sb)) for o in p.observations}
    assert people[str(empty.id)] == PersonObservation("hubspot", str(empty.id), None)
    call = {o.external_id: o for p in run("calls", ctx_for(sb)) for o in p.observations}[f"call:{bare.id}"]
    assert isinstance(call, ActivityObservation) and call.participants == ()  # timed by createdAt


# -- paging and errors ----------------------------------------------------------------------------------


def test_a_repeated_after_is_an_error_not_a_loop(sb: Sandbox, world: World) -> None:
    sb.hubspot.reset(generate_portal(world, extra_contacts=300))
    ctx = ctx_for(sb)
    done = run("contacts", ctx)[-1].cursor
    with sb.hubspot.lock:
        for contact_id in sorted(live(sb, "contacts"))[:250]:  # three pages of archived contacts
            sb.hubspot.store.archive("contacts", contact_id)
    sb.hubspot.configure(repeat_after=True)
    with pytest.raises(ConnectorError, match="repeated page token"):
        run("contacts", ctx, done)


def test_429_is_rate_limited_with_retry_after_or_the_window(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    sb.hubspot.faults.fail_next(1, "429", retry_after=30, endpoints=["search"])
    with pytest.raises(RateLimited) as injected:
        hubspot.fetch_page("contacts", None, ctx)
    assert injected.value.retry_after == 30
    sb.hubspot.configure(burst_limit=1, burst_interval_ms=10_000)
    hubspot.fetch_page("owners", None, ctx)
    with pytest.raises(RateLimited) as window:
        hubspot.fetch_page("owners", None, ctx)
    assert window.value.retry_after == 10.0 and "TEN_SECONDLY_ROLLING" in str(window.value)


def test_a_secondly_search_limit_is_waited_out_in_place(sb: Sandbox, world: World) -> None:
    sb.hubspot.reset(generate_portal(world, extra_contacts=500))
    sb.hubspot.configure(search_per_second=1)
    page = hubspot.fetch_page("contacts", None, ctx_for(sb, page_size=1000))
    assert page.observations
    assert sb.hubspot.stats_snapshot()["statuses"].get("429", 0) >= 1


@pytest.mark.parametrize(
    ("kind", "error"), [("503", RateLimited), ("500", TransientError), ("502html", TransientError)]
)
def test_server_errors(sb: Sandbox, kind: str, error: type[Exception]) -> None:
    ctx = ctx_for(sb)
    sb.hubspot.faults.fail_next(1, kind, retry_after=5, endpoints=["owners"])  # too long to wait in place
    with pytest.raises(error) as raised:
        hubspot.fetch_page("owners", None, ctx)
    if kind == "502html":
        assert "non-JSON error body: '<!DOCTYPE html>" in str(raised.value)


def test_401_is_unauthorized_and_no_token_leaks(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    sb.hubspot.auth.expire_access_tokens()
    with pytest.raises(Unauthorized) as fetch:
        hubspot.fetch_page("contacts", None, ctx)
    with pytest.raises(Unauthorized) as who:
        hubspot.whoami(ctx)
    for exc in (fetch.value, who.value):
        assert ctx.access_token not in str(exc)


def test_the_token_stays_out_of_debug_logs(
    sb: Sandbox, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = ctx_for(sb)
    urllib3_logger = logging.getLogger("urllib3")
    monkeypatch.setattr(urllib3_logger, "setLevel", lambda level: None)  # the library mutes urllib3 per client
    monkeypatch.setattr(urllib3_logger, "level", logging.DEBUG)
    with caplog.at_level(logging.DEBUG):
        hubspot.whoami(ctx)  # the token travels in the URL path here
        hubspot.fetch_page("owners", None, ctx)
    assert "/oauth/v1/access-tokens/[token]" in caplog.text
    assert ctx.access_token not in caplog.text


def test_a_foreign_cursor_restarts_nothing_silently(sb: Sandbox) -> None:
    with pytest.raises(CursorExpired):
        hubspot.fetch_page("contacts", {"v": 99}, ctx_for(sb))
    with pytest.raises(CursorExpired):
        hubspot.fetch_page("owners", {"phase": "?"}, ctx_for(sb))
    with pytest.raises(ConnectorError, match="no stream"):
        hubspot.fetch_page("deals", None, ctx_for(sb))
