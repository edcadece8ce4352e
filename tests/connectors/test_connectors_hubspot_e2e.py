"""HubSpot through the whole product: consent over HTTP, Dramatiq jobs, the store (web/stack.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from connectors import hubspot
from models.tables import Connection, Sighting, SyncState
from sandbox.world import generate_world
from web.stack import running_stack


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
