"""Microsoft end to end through the product: consent over HTTP (msal), Dramatiq jobs, the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.tables import Connection, Credential, SyncState
from sandbox.world import generate_world
from web.stack import running_stack

pytestmark = pytest.mark.filterwarnings("ignore:Change your:DeprecationWarning")
ORG, DOMAIN = "acme", "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")


def test_connect_microsoft_and_sync(tmp_path: Path) -> None:
    world = generate_world(seed=5, size=400, org_domain=DOMAIN, members=MEMBERS)
    with running_stack(data_dir=tmp_path / "stack", world=world, workers=2) as stack:
        now = world.now
        stack.rt.clock = lambda: now
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        page = stack.connect(ORG, "alice@acme.test", "microsoft")
        assert "alice@acme.test" in page.text
        progress = stack.sync(timeout=300)
        assert progress.failed == 0, f"{progress.failed} sync streams failed"
        with stack.rt.sessions() as session:
            rows = session.execute(
                select(
                    Connection.source,
                    Connection.account,
                    func.sum(SyncState.records_total),
                    func.sum(SyncState.api_calls_total),
                    func.count(SyncState.id),
                )
                .join(SyncState, SyncState.connection_id == Connection.id)
                .group_by(Connection.source, Connection.account)
            ).all()
            refresh = session.execute(select(func.count(Credential.id)).where(Credential.refresh_token.is_not(None)))
            assert refresh.scalar_one() == 1  # one grant shared by the three Outlook sources
        by_source = {source: (account, records, calls, streams) for source, account, records, calls, streams in rows}
        assert set(by_source) == {"outlook_mail", "outlook_calendar", "outlook_contacts"}
        assert all(account == "alice@acme.test" for account, *_ in by_source.values())
        assert by_source["outlook_mail"][3] == 2 and by_source["outlook_mail"][1] > 0
        assert by_source["outlook_calendar"][1] > 0 and by_source["outlook_contacts"][1] > 0
        calls = stack.sandbox.microsoft.stats.snapshot()["calls"]
        assert calls["authorize"] == 1 and calls["token:authorization_code"] == 1
