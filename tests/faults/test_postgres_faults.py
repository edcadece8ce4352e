"""R4: the store's connections terminated every few seconds and one immediate PostgreSQL restart mid-sync.

A private PostgreSQL cluster (tests/faults/services.py) serves the store; a real worker process and a
real `sxsync scheduler` work on it while the test ends every session of the app role
(`pg_terminate_backend`, every TERMINATE_EVERY seconds) and once restarts the server with
`pg_ctl restart -m immediate` (no checkpoint: recovery replays the WAL). Pass: 0 lost, 0 doubled,
and at every look during the run, in one REPEATABLE READ snapshot, each Gmail stream's stored
messages are exactly those its cursor has passed: none missing (the cursor never points past
committed data) and none beyond it (no half-written page).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.rls import APP_ROLE
from models.tables import Connection, Member, Sighting, SyncState
from sync.inprocess import Progress
from sync.scheduler import start_all
from tests.faults.conftest import LEASE_SECONDS, LONG, MEMBERS, Scenario, seed, world
from tests.faults.harness import Keys, Supervisor, compare, natural_keys
from tests.faults.outages import TRANSIENT, Driver, Scheduler
from tests.faults.services import PostgresCluster, RedisServer
from web.stack import Stack, running_stack

pytestmark = pytest.mark.faults
SYNCED = MEMBERS if LONG else MEMBERS[:2]  # CI budget: two mailboxes are chains enough to fault
PAGE_SIZE = 10
TERMINATE_EVERY = 5.0 if LONG else 2.0  # seconds; CI mode's sync is short, so it terminates more often
RESTART_AT = 8  # pages stored before the immediate restart
LOOK_EVERY = 0.5  # seconds between cursor checks


def _listed_through(cursor: dict[str, Any] | None, order: list[tuple[int, str]]) -> set[str] | None:
    """The ids a Gmail full-pass cursor has passed (None: all of them), from the emulator's listing order.

    The list page token is the emulator's signed `L|mailbox|filter|-date|id`: the listing resumes after
    that key, so every message at or before it was on an earlier page. Pending ids were listed, not stored.
    """
    if cursor is None:
        return set()
    token = cursor.get("page_token")
    if cursor.get("phase") != "full" or not token:
        passed = None
    else:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        _, _, _, date, message_id, _ = raw.split("|")
        after = (int(date), message_id)
        passed = {key[1] for key in order if key <= after}
    return passed


class CursorCheck:
    """Each look: in one snapshot, the stored Gmail messages of every stream equal what its cursor passed."""

    def __init__(self, stack: Stack, expected: Keys) -> None:
        self.stack = stack
        self.expected_ids: dict[str, set[str]] = {}
        for key in expected:
            if key[0] == "sighting":
                self.expected_ids.setdefault(key[1], set()).add(key[3])
        self.looks = 0
        self.mid_pass = 0  # stream checks against a cursor in the middle of a full pass
        self.violations: list[str] = []
        self.last = 0.0

    def look(self) -> None:
        if time.monotonic() - self.last < LOOK_EVERY:
            return
        self.last = time.monotonic()
        with self.stack.rt.sessions() as session:  # a session: row-level security scopes it (system-wide here)
            conn = session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            streams = conn.execute(
                select(SyncState.connection_id, SyncState.cursor, Member.email)
                .join(Connection, Connection.id == SyncState.connection_id)
                .join(Member, Member.id == Connection.member_id)
                .where(Connection.source == "gmail")
            ).all()
            stored: dict[int, set[str]] = {}
            for connection_id, external_id in conn.execute(select(Sighting.connection_id, Sighting.external_id)):
                stored.setdefault(connection_id, set()).add(external_id)
        if not streams:
            self.violations.append("no Gmail stream visible to the check")
        for connection_id, cursor, email in streams:
            expected = self.expected_ids.get(email, set())
            passed = _listed_through(cursor, self.stack.sandbox.google.mailboxes[email].order())
            due = (expected if passed is None else expected & passed) - set((cursor or {}).get("pending", []))
            self.mid_pass += passed is not None and bool(passed)
            have = stored.get(connection_id, set())
            if have != due:
                self.violations.append(
                    f"{email}: cursor {cursor} has {len(due - have)} passed messages missing, "
                    f"{len(have - due)} stored beyond it"
                )
        self.looks += 1


def test_terminated_connections_and_an_immediate_restart_lose_and_double_nothing(
    tmp_path: Path,
    reference: dict[tuple[str, ...], Keys],
    scenario: Scenario,
) -> None:
    scenario.name = f"R4 pg_terminate_backend every {TERMINATE_EVERY:.0f} s + pg_ctl restart -m immediate"
    started = time.monotonic()
    with (
        PostgresCluster() as cluster,
        RedisServer(tmp_path / "redis") as server,
        running_stack(
            data_dir=tmp_path / "run", world=world(), database_url=cluster.url(), broker_url=server.url(),
            workers=0, page_size=PAGE_SIZE, lease_seconds=LEASE_SECONDS,
        ) as stack,
    ):
        seed(stack, SYNCED)
        check = CursorCheck(stack, reference[SYNCED])
        terminated: list[int] = []
        with (
            Supervisor(stack.rt.settings, tmp_path / "worker.log") as worker,
            Scheduler(stack, tmp_path / "scheduler.log", float(LEASE_SECONDS)) as scheduler,
        ):
            start_all(stack.rt)
            driver = Driver(worker, stack)
            final = driver.run(timeout=300 if LONG else 120, step=_faults(cluster, check, terminated))
            scheduler_alive = scheduler.alive
        check.last = 0.0
        check.look()  # the finished store too
        stored = natural_keys(stack)
    diff = compare(reference[SYNCED], stored)
    scenario.figures |= {
        "terminations": len(terminated),
        "backends_ended": sum(terminated),
        "restarts": cluster.restarts,
        "outage_looks": driver.outages,
        "cursor_looks": check.looks,
        "mid_pass_checks": check.mid_pass,
        "cursor_violations": len(check.violations),
        "pages": final.pages,
        "expected": diff.expected,
        "lost": diff.lost,
        "doubled": diff.doubled,
        "unexpected": diff.unexpected,
        "failed": final.failed,
        "seconds": round(time.monotonic() - started, 1),
    }
    assert scheduler_alive, "the scheduler died in the outage (tmp_path/scheduler.log)"
    assert cluster.restarts == 1, "the sync ended before the restart: the scenario tested less than it says"
    assert sum(terminated) > 0, "no app session was ever terminated"
    assert check.mid_pass > 0, "no look met a cursor mid-pass: the check checked nothing"
    assert not check.violations, check.violations[:3]
    assert final.failed == 0
    assert diff.clean, diff.examples


def _faults(cluster: PostgresCluster, check: CursorCheck, terminated: list[int]) -> Callable[[Progress], None]:
    """Every look: check the cursors; every TERMINATE_EVERY s end the app's sessions; once, restart at RESTART_AT."""
    last = time.monotonic()

    def step(state: Progress) -> None:
        nonlocal last
        if state.pages >= RESTART_AT and cluster.restarts == 0:
            cluster.restart_immediate()
        if time.monotonic() - last >= TERMINATE_EVERY:
            last = time.monotonic()
            terminated.append(cluster.terminate(APP_ROLE))
        try:
            check.look()
        except TRANSIENT:  # the look's own session was just ended: look again next time
            check.last = 0.0
            raise

    return step
