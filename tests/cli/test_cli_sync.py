"""`sxsync sync --wait` as an operator runs it: in-process, and through Redis with a real `sxsync worker`.

The store and the connections come from a stack in the test process (consent over HTTP against a
live sandbox); the sync itself runs in a separate `sxsync` process pointed at the same settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.tables import Activity, Connection, Member, SyncState
from sandbox.world import generate_world
from tests.cli.conftest import Cli, settings_env, stop
from web.stack import Stack, running_stack

ORG, DOMAIN = "acme", "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
SYNCED = re.compile(r"^synced: (\d+) pages, (\d+) records, (\d+) failed$", re.MULTILINE)


@contextmanager
def connected_stack(data_dir: Path, **settings: str | int) -> Iterator[Stack]:
    world = generate_world(seed=5, size=300, org_domain=DOMAIN, members=MEMBERS)
    with running_stack(data_dir=data_dir, world=world, workers=0, page_size=50, **settings) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        for email in MEMBERS[:2]:
            stack.connect(ORG, email)
        yield stack


@pytest.fixture
def inprocess(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Stack, Cli]]:
    with connected_stack(tmp_path / "stack", database_url=sqlite_url) as stack:
        yield stack, Cli(settings_env(stack.rt.settings), tmp_path)


def streams_of(cli: Cli) -> tuple[dict[str, set[str]], dict[str, object]]:
    """`sxsync status --json`: each member's set of stream states, and the report."""
    report = json.loads(cli.ok("status", "--json"))
    states: dict[str, set[str]] = {}
    for stream in report["streams"]:
        states.setdefault(stream["member"], set()).add(stream["state"])
    return states, report


def test_sync_wait_without_a_broker_runs_the_jobs_in_process_and_reports_a_dead_grant(
    inprocess: tuple[Stack, Cli],
) -> None:
    stack, cli = inprocess
    done = cli.run("sync", "--org", ORG, "--wait")
    assert done.returncode == 0, done.stderr[-3000:]
    pages, records, failed = map(int, SYNCED.search(done.stdout).groups())  # type: ignore[union-attr]
    assert pages >= 4 and records > 0 and failed == 0  # two mailboxes, several 50-message pages each
    states, report = streams_of(cli)
    assert states == {"alice@acme.test": {"idle"}, "bob@acme.test": {"idle"}}
    with stack.rt.sessions() as session:
        assert session.execute(select(func.count()).select_from(Activity)).scalar_one() > 0
        mine = select(Connection.id).join(Member).where(Member.email == "alice@acme.test")
        connections = len(session.execute(mine).all())  # one per source her Google consent covers
        alice = session.execute(
            select(func.count()).select_from(SyncState).where(SyncState.connection_id.in_(mine))
        ).scalar_one()

    # alice removes the app at Google: the next sync fails for her alone, clearly, without a retry loop
    google = stack.sandbox.google
    google.revoke_mailbox_tokens("alice@acme.test")
    google.reset_stats()
    done = cli.run("sync", "--org", ORG, "--wait")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == f"{alice} sync streams failed; see `sxsync status`"
    assert SYNCED.search(done.stdout).group(3) == str(alice)  # type: ignore[union-attr]
    assert 1 <= google.token_calls["refresh_token"] <= connections  # one refused refresh per grant, no loop
    states, report = streams_of(cli)
    assert states == {"alice@acme.test": {"reauth_required"}, "bob@acme.test": {"idle"}}
    assert report["failed"] == alice
    table = cli.ok("status")
    assert "reauth_required" in table and f"{alice} failed" in table


def test_sync_wait_with_redis_completes_on_a_real_sxsync_worker(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    with connected_stack(tmp_path / "stack", database_url=pg_url, broker_url=redis_url) as stack:
        cli = Cli(settings_env(stack.rt.settings), tmp_path)
        log = tmp_path / "worker.log"
        worker = cli.popen("worker", "--processes", "1", "--threads", "2", log=log)
        try:
            done = cli.run("sync", "--wait", timeout=180)
        finally:
            stop(worker)
        assert done.returncode == 0, done.stderr[-2000:] + log.read_text()[-3000:]
        pages, records, failed = map(int, SYNCED.search(done.stdout).groups())  # type: ignore[union-attr]
        assert pages >= 4 and records > 0 and failed == 0
        with stack.rt.sessions() as session:
            states = session.execute(select(SyncState)).scalars().all()
            assert len(states) >= 2
            assert all(not s.running and not s.failed and s.last_success_at for s in states)
            assert sum(s.pages_total for s in states) == pages
