"""The Google Contacts connector (People API) over real HTTP against the People emulator."""

from __future__ import annotations

import json

import pytest

from connectors import google_contacts
from connectors.base import (
    JSON,
    ConnectorError,
    CursorExpired,
    Deletion,
    Endpoints,
    FetchContext,
    Page,
    PersonObservation,
    RateLimited,
)
from connectors.registry import get_connector
from sandbox.server import Sandbox
from sandbox.world import generate_world
from tests.connectors.conftest import access_token

ALICE = "alice@acme.test"


def google_ctx(sb: Sandbox, mailbox: str = ALICE, scopes: tuple[str, ...] = google_contacts.scopes) -> FetchContext:
    """What the sync layer hands the connector: a token from the emulator's OAuth flow and the endpoints."""
    endpoints = Endpoints(api_url=sb.google_settings()["GOOGLE_API_URL"], ca_bundle=sb.ca_path, timeout=10)
    return FetchContext(access_token(sb, mailbox, scopes), endpoints, account=mailbox, now=sb.world.now)


def run_pass(stream: str, ctx: FetchContext, cursor: JSON | None = None, limit: int = 50) -> list[Page]:
    """Pages until done, the cursor going through JSON between pages as the store keeps it."""
    pages = []
    for _ in range(limit):
        page = google_contacts.fetch_page(stream, cursor, ctx)
        pages.append(page)
        cursor = json.loads(json.dumps(page.cursor))
        if page.done:
            return pages
    raise AssertionError("the pass never finished")


def people(pages: list[Page]) -> dict[str, PersonObservation]:
    return {o.external_id: o for p in pages for o in p.observations if isinstance(o, PersonObservation)}


def live(sb: Sandbox, book: str, mailbox: str = ALICE) -> set[str]:
    with sb.google.lock:
        return {c.resource_name for c in sb.google.people.book(mailbox, book).values() if not c.deleted}


def test_registered_and_whoami_reads_userinfo(sandbox: Sandbox) -> None:
    assert get_connector("google_contacts") is google_contacts
    assert google_contacts.whoami(google_ctx(sandbox, "Carol@acme.test")) == "carol@acme.test"
    without_email = google_ctx(sandbox, scopes=google_contacts.scopes[:2])
    with pytest.raises(ConnectorError, match="403"):
        google_contacts.whoami(without_email)


def test_full_pass_of_the_address_book(sandbox: Sandbox) -> None:
    pages = run_pass("connections", google_ctx(sandbox))
    assert len(pages) == 1 and pages[0].done and pages[0].full_resync and pages[0].api_calls == 1
    assert pages[0].cursor["phase"] == "incremental" and pages[0].cursor["sync_token"]
    found = people(pages)
    withdrawn = [o.external_id for o in pages[0].observations if isinstance(o, Deletion)]
    assert set(found) | set(withdrawn) == live(sandbox, "connections") and not set(found) & set(withdrawn)
    assert all(o.kind == "contact" and o.source == "google_contacts" for o in found.values())
    two = [o for o in found.values() if len(o.emails) == 2]
    assert two and all(len(set(o.emails)) == 2 for o in two)  # one person, both identities
    assert any(not o.emails and o.phones for o in found.values())  # a phone only
    assert any(o.company for o in found.values()) and any(" x" in p for o in found.values() for p in o.phones)
    broken = [r for r in pages[0].rejections if r.reason != "no_identity"]
    assert broken and all(r.detail.startswith("email: ") for r in broken)
    assert all(found[r.external_id].emails for r in broken)  # the record went on with its good address
    assert all(e == e.strip().lower() for o in found.values() for e in o.emails)


def test_other_contacts_stream(sandbox: Sandbox) -> None:
    pages = run_pass("other_contacts", google_ctx(sandbox))
    found = people(pages)
    assert set(found) == live(sandbox, "other") and all(o.kind == "other_contact" for o in found.values())
    assert pages[-1].cursor["phase"] == "incremental"


def test_ten_thousand_contacts_cost_ten_calls() -> None:
    world = generate_world(seed=3, size=20, members=("dana@acme.test",))
    with Sandbox(world) as sb:
        store = sb.google.people
        have = len(live(sb, "connections", "dana@acme.test"))
        for k in range(10_000 - have):
            store.add_contact("dana@acme.test", name=f"Person {k}", emails=[f"p{k}@globex.test"], phones=["555-0100"])
        pages = run_pass("connections", google_ctx(sb, "dana@acme.test"))
        assert sum(p.api_calls for p in pages) == 10 and len(pages) == 10
        assert len(people(pages)) + sum(isinstance(o, Deletion) for p in pages for o in p.observations) == 10_000
        assert all(p.cursor.get("page_token") for p in pages[:-1]) and all(p.full_resync for p in pages)


def test_incremental_sees_added_edited_and_deleted_contacts(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    cursor = run_pass("connections", ctx)[-1].cursor
    store = sandbox.google.people
    known = sorted(live(sandbox, "connections"))
    added = store.add_contact(ALICE, name="Dana Reyes", emails=["Dana@Globex.test", "dana.reyes@gmail.com"],
                              phones=["+44 20 7946 0958"], company="Globex")  # fmt: skip
    store.edit_contact(ALICE, known[0], name="Renamed Person", emails=["renamed@initech.test"])
    store.delete_contact(ALICE, known[1])
    store.edit_contact(ALICE, known[2], emails=[], phones=[])  # nothing left to tie
    (page,) = run_pass("connections", ctx, cursor)
    assert not page.full_resync and page.api_calls == 1
    found = people([page])
    assert set(found) == {added, known[0]}
    assert found[added].emails == ("dana@globex.test", "dana.reyes@gmail.com") and found[added].company == "Globex"
    assert found[known[0]].name == "Renamed Person"
    assert sorted(o.external_id for o in page.observations if isinstance(o, Deletion)) == sorted(known[1:3])
    assert [r.reason for r in page.rejections] == ["no_identity"]
    (again,) = run_pass("connections", ctx, page.cursor)
    assert (again.observations, again.api_calls) == ([], 1)


def test_a_long_change_list_pages_under_its_sync_token(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    cursor = run_pass("other_contacts", ctx)[-1].cursor
    added = {sandbox.google.people.add_contact(ALICE, emails=[f"o{k}@x.test"], book="other") for k in range(1500)}
    pages = run_pass("other_contacts", ctx, cursor)
    assert len(pages) == 2 and pages[0].cursor == {**cursor, "page_token": pages[0].cursor["page_token"]}
    assert set(people(pages)) == added


def test_expired_sync_token_is_cursor_expired(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    cursor = run_pass("connections", ctx)[-1].cursor
    sandbox.google.people.expire_sync_tokens(ALICE)
    with pytest.raises(CursorExpired, match="EXPIRED_SYNC_TOKEN"):
        google_contacts.fetch_page("connections", cursor, ctx)
    assert run_pass("connections", ctx)[-1].done  # a full pass starts over


@pytest.mark.parametrize("cursor", [{"phase": "full"}, {"phase": "incremental"}, {"sync_token": "x"}])
def test_a_cursor_not_understood_restarts_the_pass(cursor: JSON, sandbox: Sandbox) -> None:
    with pytest.raises(CursorExpired):
        google_contacts.fetch_page("connections", cursor, google_ctx(sandbox))


def test_a_429_with_retry_after_is_rate_limited(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox)
    sandbox.google.faults.fail_next(1, "429", retry_after=9, endpoints=["other_contacts"])
    with pytest.raises(RateLimited) as caught:
        google_contacts.fetch_page("other_contacts", None, ctx)
    assert caught.value.retry_after == 9
    with pytest.raises(ConnectorError, match="no stream"):
        google_contacts.fetch_page("events", None, ctx)


def test_missing_scope_is_a_connector_error_with_context(sandbox: Sandbox) -> None:
    ctx = google_ctx(sandbox, scopes=("https://www.googleapis.com/auth/contacts.readonly",))
    assert run_pass("connections", ctx)[-1].done
    with pytest.raises(ConnectorError, match=r"otherContacts\.list: HTTP 403"):
        google_contacts.fetch_page("other_contacts", None, ctx)
