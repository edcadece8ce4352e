"""HubSpot through the whole product: consent over HTTP, Dramatiq jobs, the store (web/stack.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from connectors import hubspot
from models.tables import Connection, PersonRecord, Sighting, SyncState
from sandbox.hubspot_data import CrmRecord
from sandbox.world import generate_world
from web.stack import Stack, running_stack


def test_connect_and_sync_hubspot_end_to_end(tmp_path: Path) -> None:
    world = generate_world(seed=3, size=600)
    with running_stack(data_dir=tmp_path / "stack", world=world) as stack:
        stack.seed_org("acme", "acme.test", world.members)
        stack.connect("acme", "alice@acme.test", "hubspot")
        progress = stack.sync(timeout=300)
        assert progress.failed == 0 and progress.running == 0
        with stack.rt.sessions() as session:
            connection = session.execute(select(Connection).where(Connection.source == "hubspot")).scalar_one()
            states = session.execute(select(SyncState).where(SyncState.connection_id == connection.id)).scalars()
            sightings = session.execute(
                select(func.count()).select_from(Sighting).where(Sighting.source == "hubspot")
            ).scalar_one()
            by_stream = {s.stream: s for s in states}
        assert connection.account == "alice@acme.test" and connection.status == "active"
        assert set(by_stream) == set(hubspot.streams)
        assert all(not s.failed and s.last_error is None and s.api_calls_total > 0 for s in by_stream.values())
        portal = stack.sandbox.hubspot.portal
        engagements = sum(len(portal.records[t]) for t in ("calls", "meetings", "emails"))
        assert 0 < sightings <= engagements  # cancelled meetings and untimed records are not activities
        token_calls = stack.sandbox.hubspot.stats_snapshot()["calls"]
        assert token_calls["authorize"] == 1 and token_calls["token"] >= 1 and token_calls["token_info"] == 1
        assert_a_company_rename_reaches_its_contacts(stack)


def named_by_its_company(stack: Stack) -> CrmRecord:
    """The least recently modified contact whose company name is its company's (no text of its own): no
    incremental contacts run reads it again, so only the companies stream can bring it a new name."""
    with stack.sandbox.hubspot.lock:
        portal = stack.sandbox.hubspot.portal
        return min(
            (
                r
                for r in portal.records["contacts"].values()
                if not r.archived and not r.properties.get("company") and r.properties.get("associatedcompanyid")
            ),
            key=lambda r: r.updated_ms,
        )


def company_of(stack: Stack, contact: CrmRecord) -> str | None:
    with stack.rt.sessions() as session:
        return session.execute(
            select(PersonRecord.company).where(
                PersonRecord.source == "hubspot", PersonRecord.external_id == str(contact.id)
            )
        ).scalar_one()


def assert_a_company_rename_reaches_its_contacts(stack: Stack) -> None:
    contact = named_by_its_company(stack)
    company_id = int(contact.properties["associatedcompanyid"] or 0)
    hub = stack.sandbox.hubspot
    assert company_of(stack, contact) == hub.portal.records["companies"][company_id].properties["name"]
    with hub.lock:
        hub.store.update("companies", company_id, {"name": "Renamed Holdings"})
    progress = stack.sync(timeout=300)
    assert progress.failed == 0 and progress.running == 0
    assert company_of(stack, contact) == "Renamed Holdings"
