"""Provider trouble as ops see it: a 429 storm, and a grant the rep revoked at Google."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from models.tables import Activity, Connection, SyncState
from sync.scheduler import tick
from tests.conftest import settings_env
from tests.ops.conftest import (
    DOMAIN,
    MEMBERS,
    ORG,
    connection_ids,
    network,
    only_gmail,
    small_world,
    sync_states,
)
from web.stack import running_stack

GMAIL_CALLS = ("profile", "list", "get", "history", "batch")  # every Gmail endpoint, not OAuth


def test_a_429_storm_on_gmail_requests_ends_in_the_same_store_as_a_clean_run_without_early_retries(
    tmp_path: Path, pg_url: str, sqlite_url: str
) -> None:
    def synced(store: str, name: str, storm: bool) -> tuple[object, dict[str, object]]:
        with running_stack(
            data_dir=tmp_path / name, world=small_world(), database_url=store, page_size=50, tls=False
        ) as stack:
            stack.seed_org(ORG, DOMAIN, MEMBERS)
            for email in MEMBERS[:2]:
                stack.connect(ORG, email)
            only_gmail(stack)  # the emulator keeps one Retry-After clock per mailbox, across Google APIs
            faults = stack.sandbox.google.faults
            if storm:
                faults.fail_next(3, "429", retry_after=1, endpoints=GMAIL_CALLS)  # it starts badly, whatever the dice
                faults.fail_randomly(0.4, "429", retry_after=1, scope="request", endpoints=GMAIL_CALLS)
            final = stack.sync(timeout=120)
            assert (final.running, final.failed) == (0, 0)
            gmail = [s for s in sync_states(stack) if s.stream == "messages"]
            assert len(gmail) == 2 and all(s.last_success_at and not s.failed and s.pages_total >= 2 for s in gmail)
            return network(stack), faults.snapshot()

    stormy, faults = synced(pg_url, "storm", storm=True)
    assert faults["injected"].get("429", 0) >= 3, "the storm did not happen"  # type: ignore[attr-defined]
    assert faults["early_retries"] == 0, faults["early_log"]
    clean, _ = synced(sqlite_url, "clean", storm=False)
    assert stormy == clean


def test_a_429_storm_on_40_percent_of_batch_parts_still_completes(tmp_path: Path, sqlite_url: str) -> None:
    with running_stack(
        data_dir=tmp_path, world=small_world(size=400), database_url=sqlite_url, page_size=100, tls=False
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        stack.connect(ORG, "alice@acme.test")  # one chain: the seeded fault draws come in a fixed order
        only_gmail(stack)
        faults = stack.sandbox.google.faults
        faults.fail_randomly(0.4, "429", retry_after=1, scope="part", endpoints=("get",))
        final = stack.sync(timeout=12)
        assert final.failed == 0 and faults.early_retries == 0


def test_a_revoked_grant_needs_reauth_stops_its_chain_and_a_new_consent_recovers_it(
    tmp_path: Path, sqlite_url: str
) -> None:
    with running_stack(
        data_dir=tmp_path, world=small_world(), database_url=sqlite_url, page_size=100, tls=False
    ) as stack:
        rt, google = stack.rt, stack.sandbox.google
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        for email in MEMBERS[:2]:
            stack.connect(ORG, email)
        assert stack.sync(timeout=60).failed == 0
        alice = connection_ids(stack, "alice@acme.test")  # one per source her Google consent covers
        alice_streams = len(sync_states(stack, "alice@acme.test"))
        first_success = {s.id: s.last_success_at for s in sync_states(stack, "alice@acme.test")}

        # alice removes the app in her Google account: every token of hers dies at once
        assert google.revoke_mailbox_tokens("alice@acme.test") == 1
        google.expire_access_tokens("alice@acme.test")
        google.reset_stats()
        final = stack.sync(timeout=60)
        assert (final.running, final.failed) == (0, alice_streams)
        with rt.sessions() as session:
            assert {session.get_one(Connection, c).status for c in alice} == {"reauth_required"}
        for state in sync_states(stack, "alice@acme.test"):
            assert not state.running and not state.failed and state.last_error == "reauthorization required"
        refreshes = google.token_calls["refresh_token"]
        assert 1 <= refreshes <= len(alice)  # one refused refresh per grant (or per connection), no more
        time.sleep(1.5)  # no retry loop: nothing comes back for another refresh
        later = rt.clock() + timedelta(seconds=rt.settings.poll_seconds + 1)
        bob_streams = len(sync_states(stack, "bob@acme.test"))
        started, _ = tick(rt, later)  # (a bob chain still finishing may be resent by the reconciler: timing)
        assert started == bob_streams, "only bob's streams are due; alice's never start"
        assert stack.sync(timeout=60).failed == alice_streams
        assert google.token_calls["refresh_token"] == refreshes
        assert google.stats_snapshot()["mailboxes"].get("alice@acme.test", {}).get("ops", {}) == {}

        report = subprocess.run(
            [str(Path(sys.executable).with_name("sxsync")), "status", "--json"],
            env=settings_env(rt.settings),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        status = json.loads(report.stdout)
        assert {s["state"] for s in status["streams"] if s["member"] == "alice@acme.test"} == {"reauth_required"}
        assert {s["state"] for s in status["streams"] if s["member"] == "bob@acme.test"} == {"idle"}
        assert status["failed"] == alice_streams

        # she consents again; meanwhile a mail arrived that only her mailbox has
        google.deliver(sender="dana@globex.test", to=["alice@acme.test"], subject="back again")
        stack.connect(ORG, "alice@acme.test")
        assert google.token_calls["authorization_code"] == 1
        with rt.sessions() as session:
            assert {session.get_one(Connection, c).status for c in alice} == {"active"}
            before = session.execute(select(func.count()).select_from(Activity)).scalar_one()
        assert stack.sync(timeout=60).failed == 0
        for state in sync_states(stack, "alice@acme.test"):
            assert state.last_error is None and not state.failed
            assert state.last_success_at > first_success[state.id]  # type: ignore[operator]
        with rt.sessions() as session:
            assert session.execute(select(func.count()).select_from(Activity)).scalar_one() == before + 1
            failed = select(func.count()).select_from(SyncState).where(SyncState.failed)
            assert session.execute(failed).scalar_one() == 0
        assert google.token_calls["refresh_token"] == refreshes, "the new consent's tokens needed no refresh"
