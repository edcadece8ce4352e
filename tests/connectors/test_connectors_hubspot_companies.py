"""The HubSpot `companies` stream (hubspot-api-client over HTTPS, against the emulator): a renamed company's
new name reaches its contacts, and a quiet run costs one search."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from connectors import hubspot
from connectors.base import JSON, CursorExpired, FetchContext, Page, PersonObservation
from sandbox.hubspot_data import CrmRecord
from sandbox.server import Sandbox
from sandbox.world import generate_world
from tests.connectors.contract_support import context_for

ACCOUNT = "alice@acme.test"
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    cert_dir = Path(tmp_path_factory.mktemp("hubspot-companies-ca"))
    with Sandbox(generate_world(seed=13, size=300), tls=True, cert_dir=str(cert_dir)) as sandbox:
        yield sandbox


@pytest.fixture
def sb(served: Sandbox) -> Sandbox:
    served.hubspot.reset()
    return served


def ctx_for(sb: Sandbox, page_size: int = 500) -> FetchContext:
    return context_for(sb, "hubspot", ACCOUNT, page_size=page_size)


def run(ctx: FetchContext, cursor: JSON | None = None, stream: str = "companies") -> list[Page]:
    """Pages until done, each cursor through JSON as the store keeps it."""
    pages: list[Page] = []
    for _ in range(50):
        page = hubspot.fetch_page(stream, cursor, ctx)
        pages.append(page)
        cursor = json.loads(json.dumps(page.cursor))
        if page.done:
            return pages
    raise AssertionError("the run never finished")


def people(pages: list[Page]) -> dict[str, PersonObservation]:
    return {o.external_id: o for p in pages for o in p.observations if isinstance(o, PersonObservation)}


def calls(sb: Sandbox) -> dict[str, int]:
    return {k: v for k, v in sb.hubspot.stats_snapshot()["calls"].items() if v}


def company_with_contacts(sb: Sandbox, name: str, count: int, own_text: int = 0) -> tuple[CrmRecord, list[CrmRecord]]:
    """A company modified an hour ago and `count` contacts of it, the first `own_text` with their own
    `company` text (which wins over the company's name)."""
    hub = sb.hubspot
    with hub.lock:
        company = hub.store.create("companies", {"name": name}, at_ms=hub.now_ms() - HOUR_MS)
        contacts = [
            hub.store.create(
                "contacts",
                {
                    "email": f"p{i}@{name.lower()}.test",
                    "lastname": f"Person {i}",
                    "company": f"{name} (own text)" if i < own_text else None,
                    "associatedcompanyid": str(company.id),
                },
                {"companies": [company.id]},
                at_ms=hub.now_ms() - HOUR_MS,
            )
            for i in range(count)
        ]
    return company, contacts


def rename(sb: Sandbox, company_id: int, name: str) -> None:
    """Through the emulator's control API, as another process would (stamps hs_lastmodifieddate now)."""
    url = f"{sb.base_url}/_sandbox/hubspot/objects/companies/{company_id}"
    answer = requests.patch(url, json={"properties": {"name": name}}, verify=sb.ca_path, timeout=10)
    assert answer.status_code == 200, answer.text


def test_a_full_pass_is_one_search_and_emits_nothing(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    sb.hubspot.reset_stats()
    (page,) = run(ctx)
    assert page.observations == [] and page.api_calls == 1 and not page.full_resync
    assert calls(sb) == {"search": 1}
    with sb.hubspot.lock:
        newest = max(r.updated_ms for r in sb.hubspot.portal.records["companies"].values())
    assert page.cursor["phase"] == "idle" and page.cursor["scan"]["hwm"] == newest


def test_an_unchanged_incremental_run_is_one_search(sb: Sandbox) -> None:
    ctx = ctx_for(sb)
    done = run(ctx)[-1].cursor
    sb.hubspot.reset_stats()
    (page,) = run(ctx, done)
    assert page.observations == [] and page.api_calls == 1 and calls(sb) == {"search": 1}


def test_a_renamed_company_resends_exactly_its_contacts_with_the_new_name(sb: Sandbox) -> None:
    company, contacts = company_with_contacts(sb, "Initech", 3, own_text=1)
    ctx = ctx_for(sb)
    done = run(ctx)[-1].cursor
    rename(sb, company.id, "Initrode")
    sb.hubspot.reset_stats()
    pages = run(ctx, done)
    sent = people(pages)
    assert set(sent) == {str(c.id) for c in contacts}
    assert [sent[str(c.id)].company for c in contacts] == ["Initech (own text)", "Initrode", "Initrode"]
    assert sum(p.api_calls for p in pages) == 3  # the name came with the search: no company read
    assert calls(sb) == {"search": 1, "associations": 1, "batch_read": 1}
    by_contacts_stream = people(run(ctx, None, "contacts"))
    assert all(sent[i] == replace(by_contacts_stream[i], owner_stream="contacts") for i in sent)  # its very records


def test_the_run_after_one_that_saw_a_change_is_quiet_once_the_change_had_settled(sb: Sandbox) -> None:
    company, contacts = company_with_contacts(sb, "Initech", 2)
    ctx = ctx_for(sb)
    done = run(ctx)[-1].cursor
    with sb.hubspot.lock:  # five minutes ago: long visible to any search by the next run
        sb.hubspot.store.update("companies", company.id, {"name": "Initrode"}, at_ms=sb.hubspot.now_ms() - 300_000)
    seen = run(ctx, done)
    assert set(people(seen)) == {str(c.id) for c in contacts}
    assert {o.company for o in people(seen).values()} == {"Initrode"}
    sb.hubspot.reset_stats()
    (quiet,) = run(ctx, seen[-1].cursor)
    assert quiet.observations == [] and quiet.api_calls == 1


def test_a_change_indexed_late_is_caught_by_the_next_run(sb: Sandbox) -> None:
    first, first_contacts = company_with_contacts(sb, "Initech", 2)
    late, late_contacts = company_with_contacts(sb, "Umbrella", 2)
    ctx = ctx_for(sb)
    done = run(ctx)[-1].cursor
    rename(sb, first.id, "Initrode")
    seen = run(ctx, done)
    assert set(people(seen)) == {str(c.id) for c in first_contacts}
    with sb.hubspot.lock:  # modified before the rename the last run saw, but searchable only now
        sb.hubspot.store.update("companies", late.id, {"name": "Umbrella Corp"}, at_ms=first.updated_ms - 1000)
    again = people(run(ctx, seen[-1].cursor))
    assert {str(c.id) for c in late_contacts} <= set(again) <= {str(c.id) for c in first_contacts + late_contacts}
    assert {again[str(c.id)].company for c in late_contacts} == {"Umbrella Corp"}


@pytest.mark.parametrize(("page_size", "page_count"), [(500, 3), (2000, 1)])
def test_a_company_with_1200_contacts_pages_its_associations(sb: Sandbox, page_size: int, page_count: int) -> None:
    company, contacts = company_with_contacts(sb, "Globex", 1200)
    ctx = ctx_for(sb, page_size)
    done = run(ctx)[-1].cursor
    rename(sb, company.id, "Globex Worldwide")
    sb.hubspot.reset_stats()
    pages = run(ctx, done)
    sent = [o for p in pages for o in p.observations if isinstance(o, PersonObservation)]
    assert sorted(o.external_id for o in sent) == sorted(str(c.id) for c in contacts)  # each exactly once
    assert {o.company for o in sent} == {"Globex Worldwide"}
    assert len(pages) == page_count and all(p.cursor["pending"] for p in pages[:-1])
    # 500 + 500 + 200 links, 12 contact reads, and the name again on each page that did not search for it
    assert calls(sb) == {"search": 1, "associations": 3, "batch_read": 12 + page_count - 1}


def test_an_archived_company_deletes_nothing_and_leaves_its_contacts_when_they_are_read(sb: Sandbox) -> None:
    company, contacts = company_with_contacts(sb, "Initech", 2)
    ctx = ctx_for(sb)
    done = run(ctx)[-1].cursor
    with sb.hubspot.lock:
        sb.hubspot.store.archive("companies", company.id)
    (page,) = run(ctx, done)
    assert page.observations == [] and page.api_calls == 1  # search never returns archived records
    read = people(run(ctx, None, "contacts"))
    assert [read[str(c.id)].company for c in contacts] == [None, None]


def test_a_foreign_cursor_is_expired(sb: Sandbox) -> None:
    with pytest.raises(CursorExpired):
        hubspot.fetch_page("companies", {"v": 99, "phase": "idle"}, ctx_for(sb))
    with pytest.raises(CursorExpired):
        hubspot.fetch_page("companies", {"v": 1, "phase": "scan", "scan": {}}, ctx_for(sb))
