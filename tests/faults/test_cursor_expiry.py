"""R9: every provider expires its cursors during a sync while records are deleted at the sources: each
stream resyncs on its own, nothing is doubled, and the deletions are reconciled.

Every source, both reps, on PostgreSQL with worker threads. After a clean backfill one activity per
source is deleted at its provider, the clock moves 15 days (Salesforce's Recycle Bin horizon: its
cursors expire by age), every provider kills the cursors it handed out (Gmail history, Calendar and
People sync tokens, Graph delta tokens), a sync starts, and once its resync passes are under way the
cursors are killed again. The store must then equal the oracle of the emulators' live data
(tests/e2e), hold no row twice, and keep nothing of the deleted records.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import select

from models.tables import Connection, Sighting, SyncState
from sandbox.server import Sandbox
from sandbox.world import generate_world
from sync.connections import sources_of
from sync.decay import decay_due
from sync.inprocess import progress, wait_for_chains
from sync.scheduler import start_all
from tests.connectors.contract_support import Case, provider_of
from tests.e2e.helpers import CONNECTED, DOMAIN, MEMBERS, ORG
from tests.e2e.network_compare import network_problems
from tests.e2e.oracle_sources import expected_network, read_sandbox
from tests.faults.conftest import Scenario
from tests.faults.harness import natural_keys
from web.app import PROVIDER_TEXT
from web.stack import Stack, running_stack

pytestmark = pytest.mark.faults
EXPIRING = ("gmail", "google_calendar", "google_contacts", "outlook_mail", "outlook_calendar", "outlook_contacts",
            "salesforce")  # fmt: skip  (HubSpot's search cursor is a timestamp: nothing to expire)


def expire_every_cursor(sandbox: Sandbox) -> None:
    """Each emulator refuses every cursor it handed out so far (Salesforce's expire by the clock instead)."""
    for account in CONNECTED:
        context = cast(Any, SimpleNamespace(account=account))
        for source in ("gmail", "google_calendar", "google_contacts", "outlook_mail", "outlook_calendar"):
            provider_of(sandbox, Case(source, "")).expire(Case(source, ""), context)


def delete_one_activity_per_source(stack: Stack) -> dict[str, str]:
    """Delete, at its provider, the latest stored activity of each source; {source: external_id}."""
    deleted: dict[str, str] = {}
    with stack.rt.sessions() as s:
        rows = s.execute(
            select(Sighting.source, Sighting.stream, Sighting.external_id, Connection.account)
            .join(Connection, Connection.id == Sighting.connection_id)
            .where(Sighting.noise.is_(None))
            .order_by(Sighting.occurred_at.desc())
        ).all()
    for source, stream, external_id, account in rows:
        if source in deleted:
            continue
        case = Case(source, stream)
        context = cast(Any, SimpleNamespace(account=account))
        provider_of(stack.sandbox, case).delete(case, context, cast(Any, SimpleNamespace(external_id=external_id)))
        deleted[source] = external_id
    return deleted


def generations(stack: Stack) -> dict[tuple[int, str], int]:
    with stack.rt.sessions() as s:
        rows = s.execute(select(SyncState.connection_id, SyncState.stream, SyncState.generation))
        return {(connection, stream): generation for connection, stream, generation in rows}


def test_every_provider_expiring_its_cursors_mid_sync_resyncs_without_doubles_and_reconciles_deletions(
    tmp_path: Path, pg_url: str, scenario: Scenario
) -> None:
    scenario.name = "R9 every provider's cursors expired mid-sync"
    world = generate_world(seed=0, size=300, org_domain=DOMAIN, members=MEMBERS)
    started = time.monotonic()
    with running_stack(
        data_dir=tmp_path / "stack", world=world, database_url=pg_url, workers=2, page_size=25
    ) as stack:
        clock = [world.now]
        stack.rt.clock = lambda: clock[0]
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        for email in CONNECTED:
            for provider in PROVIDER_TEXT:
                if sources_of(provider):
                    stack.connect(ORG, email, provider)
        assert stack.sync(timeout=240).failed == 0
        before = generations(stack)
        deleted = delete_one_activity_per_source(stack)
        clock[0] = world.now + timedelta(days=15)
        expire_every_cursor(stack.sandbox)
        pages = progress(stack.rt).pages
        start_all(stack.rt)
        deadline = time.monotonic() + 120
        while progress(stack.rt).pages < pages + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        running = progress(stack.rt).running
        expire_every_cursor(stack.sandbox)  # again, while the resync passes run
        final = wait_for_chains(stack.rt, timeout=300)
        decay_due(stack.rt, clock[0])  # the scheduler's daily pass: strengths as of the moved clock
        after = generations(stack)
        with stack.rt.sessions() as s:
            sources = dict(s.execute(select(Connection.id, Connection.source)).all())
            gone = Sighting.external_id.in_(deleted.values())
            kept = set(s.execute(select(Sighting.external_id).where(gone)).scalars())
        resynced = {sources[c] for (c, _), g in after.items() if g > before[(c, _)]}
        network = expected_network(
            read_sandbox(stack.sandbox, CONNECTED, clock[0], stack.rt.settings.backfill_days),
            members=MEMBERS, org_domains=(DOMAIN,), now=clock[0],
        )
        problems = network_problems(stack, network)
        doubled = {k: n for k, n in natural_keys(stack).items() if n > 1}
    scenario.figures |= {
        "deleted": len(deleted),
        "resynced_sources": len(resynced),
        "streams_running_at_second_expiry": running,
        "failed": final.failed,
        "oracle_differences": len(problems),
        "doubled": len(doubled),
        "deleted_still_stored": len(kept),
        "seconds": round(time.monotonic() - started, 1),
    }
    assert final.failed == 0
    assert running > 0, "the second expiry came after the sync had finished"
    assert set(EXPIRING) <= resynced, f"no automatic resync of {set(EXPIRING) - resynced}"
    assert set(deleted) >= set(EXPIRING) - {"google_contacts", "outlook_contacts"}  # an activity of each
    assert not kept, f"deleted at the source but still stored: {kept}"
    assert not problems, "\n".join(problems[:40])
    assert not doubled, list(doubled)[:5]
