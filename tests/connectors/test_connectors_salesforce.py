"""The Salesforce connector over real HTTPS (simple-salesforce, requests) against the Salesforce emulator."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors import salesforce
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
from connectors.registry import get_connector
from connectors.salesforce_api import next_url, open_api, records
from connectors.salesforce_mapping import Mapped, map_task
from connectors.salesforce_soql import FIELDS
from sandbox.server import Sandbox
from sandbox.world import World, generate_world

ALICE = "alice@acme.test"
REDIRECT = "http://127.0.0.1:9/oauth/callback/salesforce"


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=5, size=600)


@pytest.fixture
def sb(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    certs = tmp_path_factory.getbasetemp() / "salesforce-connector-ca"
    with Sandbox(world, tls=True, cert_dir=str(certs)) as running:
        yield running


def login(sb: Sandbox, email: str = ALICE) -> dict[str, Any]:
    """The web-server flow with PKCE, as the product's OAuth client runs it; the token answer."""
    settings = sb.salesforce_settings()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    consent = requests.get(
        settings["SALESFORCE_AUTH_URL"],
        params={
            "response_type": "code",
            "client_id": settings["SALESFORCE_CLIENT_ID"],
            "redirect_uri": REDIRECT,
            "scope": " ".join(salesforce.scopes),
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "login_hint": email,
        },
        allow_redirects=False,
        verify=sb.ca_path,
        timeout=10,
    )
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(consent.headers["location"]).query)["code"][0]
    answer = requests.post(
        settings["SALESFORCE_TOKEN_URL"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": settings["SALESFORCE_CLIENT_ID"],
            "client_secret": settings["SALESFORCE_CLIENT_SECRET"],
        },
        verify=sb.ca_path,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def context(sb: Sandbox, tokens: dict[str, Any] | None = None, **overrides: Any) -> FetchContext:
    """What the sync layer hands the connector: the token, and instance_url as api_url and in extra."""
    tokens = tokens or login(sb)
    fields: dict[str, Any] = {"now": sb.world.now, "account": ALICE}
    fields.update(overrides)
    return FetchContext(
        access_token=tokens["access_token"],
        endpoints=Endpoints(tokens["instance_url"], sb.ca_path, 10),
        extra={"instance_url": tokens["instance_url"], "id": tokens["id"]},
        **fields,
    )


def run_pass(stream: str, ctx: FetchContext, cursor: JSON | None = None, limit: int = 50) -> list[Page]:
    """Pages until caught up, each cursor through a JSON round trip as the store keeps it."""
    pages = []
    for _ in range(limit):
        page = salesforce.fetch_page(stream, cursor, ctx)
        pages.append(page)
        cursor = json.loads(json.dumps(page.cursor))
        if page.done:
            return pages
    raise AssertionError("the pass never finished")


def of_type(pages: list[Page], kind: type) -> list[Any]:
    return [o for p in pages for o in p.observations if isinstance(o, kind)]


def query_all_rows(sb: Sandbox, sobject: str) -> int:
    """How many rows queryAll returns for an object right now (live plus the Recycle Bin)."""
    counts = sb.salesforce.summary()[sobject]
    return counts["live"] + counts["deleted"]


def test_registered_with_the_scopes_it_needs() -> None:
    assert get_connector("salesforce") is salesforce
    assert salesforce.provider == "salesforce"
    assert set(salesforce.scopes) == {"api", "id", "refresh_token"}
    source = Path(salesforce.__file__).with_name("salesforce_api.py").read_text()
    built = re.findall(r"\bSalesforce\(([^)]*)\)", source)  # the library is only ever handed a session
    assert built and all(
        set(re.findall(r"(\w+)=", c)) == {"instance_url", "session_id", "version", "session"} for c in built
    )


def test_whoami_and_every_stream_once(sb: Sandbox) -> None:
    ctx = context(sb)
    assert salesforce.whoami(ctx) == ALICE
    pages = {stream: run_pass(stream, ctx) for stream in salesforce.streams}
    users = of_type(pages["users"], PersonObservation)
    assert {u.external_id for u in users} == {f"user:{u['Id']}" for u in sb.salesforce.live("User")}
    assert all(u.kind == "user" for u in users) and {e for u in users for e in u.emails} == set(sb.world.members)
    assert of_type(pages["accounts"], PersonObservation) == [] and sum(p.api_calls for p in pages["accounts"]) == 1
    leads = of_type(pages["leads"], PersonObservation)
    assert {x.kind for x in leads} == {"lead"} and all(x.company for x in leads)
    calls = [a for a in of_type(pages["tasks"], ActivityObservation) if a.kind == "call"]
    assert calls and {a.kind for a in of_type(pages["tasks"], ActivityObservation)} == {"call", "crm_email"}
    call = next(c for c in calls if len(c.participants) == 2)
    assert call.dedupe_key == f"salesforce:{call.external_id}"
    assert [p.role for p in call.participants] == ["owner", "associated"]
    assert call.participants[0].person_ref.startswith("salesforce:user:005")  # type: ignore[union-attr]
    assert all(p.email == "" for p in call.participants)
    meetings = of_type(pages["events"], ActivityObservation)
    parents = [e for e in sb.salesforce.live("Event") if not e["IsChild"]]
    assert {m.external_id for m in meetings} == {e["Id"] for e in parents}  # invitees' child copies skipped
    assert any(p.declined for m in meetings for p in m.participants)
    assert all(p.full_resync for stream in ("users", "contacts", "leads", "tasks", "events") for p in pages[stream])


def interaction_rows(sb: Sandbox) -> int:
    """Task rows the tasks stream queries (calls and emails, live or in the Recycle Bin)."""
    with sb.salesforce.lock:
        rows = sb.salesforce.data.records["Task"].values()
        return sum(1 for r in rows if r.get("TaskSubtype") in ("Call", "Email") or r.get("CallType") is not None)


@pytest.mark.parametrize("sobject, stream", [("Task", "tasks"), ("Contact", "contacts")])
def test_ten_thousand_records_in_five_calls(sb: Sandbox, sobject: str, stream: str) -> None:
    fields = {"Task": {"TaskSubtype": "Call", "Subject": "dial"}, "Contact": {"LastName": "Bulk"}}[sobject]
    read = interaction_rows(sb) if sobject == "Task" else query_all_rows(sb, sobject)
    sb.salesforce.create_many(sobject, [fields] * (10_000 - read))
    sb.salesforce.reset_stats()
    pages = run_pass(stream, context(sb))
    seen = [o.external_id for p in pages for o in p.observations if isinstance(o, (ActivityObservation, Deletion))]
    seen += [o.external_id for o in of_type(pages, PersonObservation)]
    assert len(pages) == 5 and sum(p.api_calls for p in pages) == 5
    assert sb.salesforce.object_calls == {f"queryAll:{sobject}": 1, f"query_more:{sobject}": 4}
    expected = {r["Id"] for r in sb.salesforce.live(sobject) if r.get("TaskSubtype") != "Task"}  # to-dos skipped
    assert expected <= set(seen) and len(seen) == len(set(seen))
    assert [p.done for p in pages] == [False] * 4 + [True]


def reference_tasks(ctx: FetchContext) -> list[Any]:
    """What the tasks stream emitted when it read every Task row: one unfiltered queryAll, mapped."""
    api = open_api(ctx)
    fields = ", ".join(FIELDS["tasks"])
    page = api.query_all(f"SELECT {fields} FROM Task ORDER BY SystemModstamp ASC, Id ASC", "all tasks")
    rows = records(page)
    while (url := next_url(page, "all tasks")) is not None:
        page = api.more(url, "all tasks")
        rows += records(page)
    out = Mapped()
    for row in rows:
        map_task(row, out)
    return out.observations + out.rejections


def test_tasks_never_fetch_to_dos_and_emit_what_reading_every_row_did(sb: Sandbox) -> None:
    state = sb.salesforce
    state.create_many("Task", [{"TaskSubtype": "Task", "Subject": "Send proposal"}] * 2500)  # to-dos
    state.create_many("Task", [{"TaskSubtype": "ListEmail"}, {"TaskSubtype": "Cadence"}, {"TaskSubtype": None}] * 50)
    state.create_many(
        "Task", [{"TaskSubtype": "Call", "CallType": "Inbound"}] * 1500 + [{"TaskSubtype": "Email"}] * 600
    )
    legacy = state.create_many("Task", [{"TaskSubtype": "Task", "CallType": "Outbound"}, {"CallType": "Inbound"}])
    gone_call, gone_todo = (
        next(r["Id"] for r in state.live("Task") if r["TaskSubtype"] == k) for k in ("Call", "Task")
    )
    state.delete(gone_call)
    state.delete(gone_todo)
    ctx = context(sb)
    reference = reference_tasks(ctx)
    state.reset_stats()
    pages = run_pass("tasks", ctx)
    emitted = [o for p in pages for o in (*p.observations, *p.rejections)]
    to_dos = {r["Id"] for r in state.live("Task") if r["TaskSubtype"] not in ("Call", "Email") and not r["CallType"]}
    # the same records, less the Deletion of a to-do that was never stored
    assert sorted(map(repr, emitted)) == sorted(repr(o) for o in reference if o != Deletion("salesforce", gone_todo))
    calls = {a.external_id for a in of_type(pages, ActivityObservation) if a.kind == "call"}
    assert Deletion("salesforce", gone_call) in emitted and set(legacy) <= calls  # generic subtype + CallType
    assert not to_dos & {getattr(o, "external_id", "") for o in emitted}
    wanted = interaction_rows(sb)
    assert query_all_rows(sb, "Task") - wanted > 2500  # what the stream no longer reads
    assert sum(p.api_calls for p in pages) == len(pages) == -(-wanted // 2000)
    assert state.object_calls == {"queryAll:Task": 1, "query_more:Task": len(pages) - 1}


def test_a_deleted_call_or_email_is_a_deletion_and_to_dos_never_show(sb: Sandbox) -> None:
    state = sb.salesforce
    ctx = context(sb)
    cursor = run_pass("tasks", ctx)[-1].cursor
    call, email, todo = (
        next(r["Id"] for r in state.live("Task") if r["TaskSubtype"] == k) for k in ("Call", "Email", "Task")
    )
    state.delete(call)
    state.delete(email)
    state.delete(todo)
    fresh = state.create("Task", {"TaskSubtype": "Task", "Subject": "Follow up", "ActivityDate": None})
    kept = state.create("Task", {"TaskSubtype": "Call", "CallType": "Outbound", "Subject": "Ring"})
    state.reset_stats()
    pages = run_pass("tasks", ctx, cursor)
    assert len(pages) == 1 and pages[0].api_calls == 1 and not pages[0].full_resync
    assert {d.external_id for d in of_type(pages, Deletion)} == {call, email}
    activities = {a.external_id for a in of_type(pages, ActivityObservation)}
    assert kept in activities and activities <= {r["Id"] for r in state.live("Task")}
    assert not {todo, fresh} & {o.external_id for o in pages[0].observations}


def test_incremental_after_create_update_delete(sb: Sandbox) -> None:
    ctx = context(sb)
    state = sb.salesforce
    old, gone = (c["Id"] for c in state.live("Contact")[:2])
    cursor = run_pass("contacts", ctx)[-1].cursor
    new = state.create("Contact", {"FirstName": "Nia", "LastName": "Obi", "Email": " Nia.Obi@Initech.TEST "})
    state.update(old, {"MobilePhone": "+1 415 555 0199"})
    state.delete(gone)
    pages = run_pass("contacts", ctx, cursor)
    assert len(pages) == 1 and not pages[0].full_resync and pages[0].api_calls == 1
    people = {p.external_id: p for p in of_type(pages, PersonObservation)}
    assert people[new].emails == ("nia.obi@initech.test",) and people[new].name == "Nia Obi"
    assert "+1 415 555 0199" in people[old].phones
    assert [d.external_id for d in of_type(pages, Deletion)] == [gone]
    quiet = run_pass("contacts", ctx, pages[-1].cursor)  # the 5-minute lookback brings back only what was sent
    assert quiet[0].done and quiet[0].api_calls == 1 and quiet[0].observations == []
    state.update(new, {"Phone": "+1 415 555 0100"})  # changed again inside the lookback: a new SystemModstamp
    again = run_pass("contacts", ctx, quiet[-1].cursor)
    assert [o.external_id for o in again[0].observations] == [new]
    with state.lock:  # saved again within the same second: Salesforce stores SystemModstamp to the second
        state.data.records["Contact"][new]["Phone"] = "+1 415 555 0111"
    same_second = run_pass("contacts", ctx, again[-1].cursor)
    assert [p.phones for p in of_type(same_second, PersonObservation)] == [("+1 415 555 0111",)]


def test_merge_deletes_the_loser_and_names_it_on_the_winner(sb: Sandbox) -> None:
    ctx = context(sb)
    state = sb.salesforce
    winner, loser = state.create_many("Contact", [{"LastName": "Dup", "Email": "dup@globex.test"}] * 2)
    cursor = run_pass("contacts", ctx)[-1].cursor
    state.merge(winner, [loser])
    page = run_pass("contacts", ctx, cursor)[0]
    assert [d.external_id for d in of_type([page], Deletion)] == [loser]
    merged = [p for p in of_type([page], PersonObservation) if p.external_id == winner]
    assert merged and merged[0].merged_from == (loser,)


def test_merge_winner_on_a_later_page_is_fetched_by_id(sb: Sandbox) -> None:
    ctx = context(sb)
    state = sb.salesforce
    winner, loser = state.create_many("Contact", [{"LastName": "Twin", "Phone": "555-0100"}] * 2)
    cursor = run_pass("contacts", ctx)[-1].cursor
    state.merge(winner, [loser])
    state.create_many("Contact", [{"LastName": "Filler"}] * 2500)
    state.update(winner, {"FirstName": "Later"})  # the winner now sorts after the loser's page
    first = salesforce.fetch_page("contacts", cursor, ctx)
    assert not first.done and first.api_calls == 2
    winners = [p for p in of_type([first], PersonObservation) if p.external_id == winner]
    assert winners[0].merged_from == (loser,) and Deletion("salesforce", loser) in first.observations


def test_an_old_or_foreign_cursor_means_a_full_pass(sb: Sandbox) -> None:
    ctx = context(sb)
    cursor = run_pass("contacts", ctx)[-1].cursor
    later = context(sb, now=sb.world.now + timedelta(days=15))
    with pytest.raises(CursorExpired):
        salesforce.fetch_page("contacts", cursor, later)
    with pytest.raises(CursorExpired):
        salesforce.fetch_page("contacts", {"history_id": "42"}, ctx)
    assert salesforce.fetch_page("contacts", cursor, context(sb, now=sb.world.now + timedelta(days=13))).done


def test_request_limit_exceeded_and_throttles_are_rate_limited(sb: Sandbox) -> None:
    ctx = context(sb)
    state = sb.salesforce
    state.configure(daily_api_limit=state.api_used)
    with pytest.raises(RateLimited) as spent:
        salesforce.fetch_page("leads", None, ctx)
    assert spent.value.retry_after == 3600 and "REQUEST_LIMIT_EXCEEDED" in str(spent.value)
    state.configure(daily_api_limit=1_000_000)
    state.faults.fail_next(1, "503", retry_after=7, endpoints=["queryAll"])
    with pytest.raises(RateLimited) as busy:
        salesforce.fetch_page("leads", None, ctx)
    assert busy.value.retry_after == 7
    state.faults.fail_next(1, "500", endpoints=["queryAll"])
    with pytest.raises(TransientError):
        salesforce.fetch_page("leads", None, ctx)
    state.faults.fail_next(1, "502html", endpoints=["queryAll"])
    with pytest.raises(TransientError, match="non-JSON error body"):
        salesforce.fetch_page("leads", None, ctx)


def test_an_expired_session_is_unauthorized_without_the_token(sb: Sandbox) -> None:
    tokens = login(sb)
    sb.salesforce.auth.expire_sessions()
    with pytest.raises(Unauthorized) as err:
        salesforce.fetch_page("users", None, context(sb, tokens))
    assert "INVALID_SESSION_ID" in str(err.value) and tokens["access_token"] not in str(err.value)
    with pytest.raises(Unauthorized):
        salesforce.whoami(context(sb, tokens))


def test_a_repeated_next_records_url_is_an_error_not_a_loop(sb: Sandbox) -> None:
    sb.salesforce.create_many("Task", [{"TaskSubtype": "Email"}] * 4500)
    ctx = context(sb)
    first = salesforce.fetch_page("tasks", None, ctx)
    sb.salesforce.configure(repeat_next_records_url=True)
    with pytest.raises(ConnectorError, match="repeated nextRecordsUrl"):
        salesforce.fetch_page("tasks", first.cursor, ctx)


def test_an_expired_query_locator_resumes_at_the_high_water_mark(sb: Sandbox) -> None:
    sb.salesforce.create_many("Task", [{"TaskSubtype": "Call"}] * 4500)
    ctx = context(sb)
    first = salesforce.fetch_page("tasks", None, ctx)
    sb.salesforce.expire_locators()
    rest = run_pass("tasks", ctx, first.cursor)
    seen = {o.external_id for p in [first, *rest] for o in p.observations}
    calls = {t["Id"] for t in sb.salesforce.live("Task") if t["TaskSubtype"] in ("Call", "Email")}
    assert calls <= seen and rest[-1].done and all(p.full_resync for p in rest)


def test_a_renamed_account_reaches_its_contacts(sb: Sandbox) -> None:
    ctx = context(sb)
    cursor = run_pass("accounts", ctx)[-1].cursor
    account = next(a for a in sb.salesforce.live("Account") if any(
        c["AccountId"] == a["Id"] for c in sb.salesforce.live("Contact")))  # fmt: skip
    sb.salesforce.update(account["Id"], {"Name": "Renamed Industries"})
    pages = run_pass("accounts", ctx, cursor)
    people = of_type(pages, PersonObservation)
    members = {c["Id"] for c in sb.salesforce.live("Contact") if c["AccountId"] == account["Id"]}
    assert {p.external_id for p in people} == members and {p.company for p in people} == {"Renamed Industries"}
    assert of_type(run_pass("accounts", ctx, pages[-1].cursor), PersonObservation) == []
