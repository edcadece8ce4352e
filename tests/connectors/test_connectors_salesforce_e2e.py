"""Salesforce through the whole product: consent over HTTP, instance_url kept, every stream synced."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from models.tables import Connection, SyncState
from sandbox.world import generate_world
from web.stack import running_stack


def test_connect_and_sync_salesforce_through_the_product(tmp_path: Path, sqlite_url: str) -> None:
    world = generate_world(seed=7, size=400)
    with running_stack(data_dir=tmp_path / "stack", world=world, database_url=sqlite_url) as stack:
        now = world.now
        stack.rt.clock = lambda: now
        stack.seed_org("acme", "acme.test", world.members)
        stack.connect("acme", "alice@acme.test", "salesforce")
        final = stack.sync(timeout=120)
        assert final.failed == 0 and final.running == 0
        with stack.rt.sessions() as session:
            connection = session.execute(select(Connection).where(Connection.source == "salesforce")).scalar_one()
            assert connection.account == "alice@acme.test"
            assert connection.extra["instance_url"] == stack.sandbox.base_url + "/salesforce"
            states = session.execute(select(SyncState).where(SyncState.connection_id == connection.id)).scalars()
            by_stream = {s.stream: s for s in states}
        assert set(by_stream) == {"users", "accounts", "contacts", "leads", "tasks", "events"}
        assert all(s.last_error is None and s.api_calls_total >= 1 for s in by_stream.values())
        assert by_stream["tasks"].records_total > 0
        org = stack.sandbox.salesforce
        assert org.stats_snapshot()["token_calls"]["authorization_code"] == 1
        org.configure(rotate_refresh_tokens=True)
        for round_ in range(2):  # a session timeout mid-sync: refresh (rotating), retry, carry on
            org.auth.expire_sessions()
            org.create("Contact", {"LastName": f"Late{round_}", "Email": f"late{round_}@globex.test"})
            again = stack.sync(timeout=120)
            assert again.failed == 0 and again.running == 0
        assert org.stats_snapshot()["token_calls"]["refresh_token"] == 2
