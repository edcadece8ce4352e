"""A real `dramatiq` worker process on Redis, SIGKILLed mid-backfill: the sync completes, nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from models.network import iter_contacts
from models.settings import Settings
from models.tables import Activity, Interaction, Participant, Relationship, Sighting
from sync.inprocess import progress, wait_for_chains
from sync.scheduler import start_all
from tests.conftest import settings_env
from tests.pipeline.conftest import DOMAIN, GMAIL_ONLY, MEMBERS, ORG, small_world
from web.stack import Stack, running_stack

REPO = Path(__file__).resolve().parents[2]


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "--processes", "1", "--threads", "2", "worker"],
        cwd=REPO,
        env=settings_env(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def network(stack: Stack) -> tuple[dict[str, int], list[tuple[tuple[str, ...], object]]]:
    with stack.rt.sessions() as s:
        rows = {
            t.__tablename__: s.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (Activity, Sighting, Participant, Interaction, Relationship)
        }
        contacts = sorted(
            (tuple(c["emails"]), sorted((r["member"], tuple(r["interactions"].values())) for r in c["relationships"]))
            for c in iter_contacts(s, 1)
        )
    return rows, contacts


def test_sigkilled_worker_mid_backfill_loses_and_doubles_nothing(
    tmp_path: Path, pg_url: str, redis_url: str, sqlite_url: str
) -> None:
    world = small_world(size=1500)
    with running_stack(
        data_dir=tmp_path / "real",
        world=world,
        database_url=pg_url,
        broker_url=redis_url,
        workers=0,
        page_size=100,
        lease_seconds=10,
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
        for email in MEMBERS[:2]:
            stack.connect(ORG, email)
        stack.sandbox.google.faults.latency_ms = 40  # slow the provider so the kill lands mid-backfill
        log = tmp_path / "worker.log"
        worker = start_worker(stack.rt.settings, log)
        try:
            start_all(stack.rt)
            deadline = time.monotonic() + 60
            while progress(stack.rt).pages < 3:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.05)
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            killed_at = progress(stack.rt)
            assert killed_at.running > 0, "the kill must land before the backfill finished"
            worker = start_worker(stack.rt.settings, log)
            final = wait_for_chains(stack.rt, timeout=180, reconcile_every=5)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        assert final.failed == 0
        after_kill = network(stack)
    with running_stack(data_dir=tmp_path / "reference", world=small_world(size=1500), database_url=sqlite_url) as ref:
        ref.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
        for email in MEMBERS[:2]:
            ref.connect(ORG, email)
        assert ref.sync().failed == 0
        assert network(ref) == after_kill
