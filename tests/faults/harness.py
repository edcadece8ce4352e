"""The fault suite's tools: a supervised `dramatiq` worker process, and the store by natural key.

The worker is a real `python -m dramatiq worker` process in a session of its own (like
tests/pipeline/test_worker_kill.py), started with the stack's settings as SXSYNC_* environment
plus the failpoints. Dramatiq's main process shuts down when its worker process dies, so the
supervisor plays systemd/Kubernetes: it starts a new one, counts the deaths, and meanwhile runs the
scheduler's reconciler the way `sxsync scheduler` would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import select, text, update

from models.failpoints import DIR_ENV, ENV
from models.network import iter_contacts
from models.settings import Settings
from models.tables import (
    Activity,
    Connection,
    Credential,
    Identity,
    Interaction,
    Member,
    Participant,
    Sighting,
    SyncState,
)
from sync.inprocess import Progress, progress
from sync.scheduler import reconcile
from tests.conftest import settings_env
from web.stack import Stack

REPO = Path(__file__).resolve().parents[2]
Keys = Counter[tuple[Any, ...]]


@dataclass
class Supervisor:
    """One worker process at a time, restarted whenever it dies; `deaths` counts the deaths it saw."""

    settings: Settings
    log: Path
    failpoints: str = ""
    failpoint_dir: Path | None = None
    threads: int = 2
    deaths: int = 0
    starts: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def env(self) -> dict[str, str]:
        env = settings_env(self.settings) | {"PYTHONFAULTHANDLER": "1"}  # SIGABRT dumps every thread's stack
        if self.failpoints:
            env[ENV] = self.failpoints
        if self.failpoint_dir is not None:
            env[DIR_ENV] = str(self.failpoint_dir)
        return env

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "--processes", "1", "--threads", str(self.threads), "worker"],
            cwd=REPO,
            env=self.env(),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def restart(self, failpoints: str) -> None:
        """Stop the worker and start one with other failpoints ("" for none)."""
        self.stop()
        self.failpoints = failpoints
        self.start()

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def watch(self) -> None:
        """Restart a worker that died (a failpoint's SIGKILL ends dramatiq's main process too)."""
        if self.proc is not None and self.proc.poll() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of its session
            self.deaths += 1
            self.start()

    def drive(
        self,
        stack: Stack,
        *,
        timeout: float,
        until: Callable[[Progress], bool] = lambda p: p.running == 0,
        reconcile_every: float = 1.0,
    ) -> Progress:
        """Keep a worker alive and the reconciler ticking until `until(progress)` (or fail after `timeout`)."""
        started = time.monotonic()
        last_reconcile = 0.0
        while True:
            self.watch()
            state = progress(stack.rt)
            if until(state):
                return state
            now = time.monotonic()
            if now - started > timeout:
                why = f"not done after {timeout:.0f} s: {state}, {self.deaths} deaths"
                raise AssertionError(f"{why}\n{self.hang(stack)}")
            if now - last_reconcile >= reconcile_every:
                reconcile(stack.rt, stack.rt.clock())  # what `sxsync scheduler` does every tick
                last_reconcile = now
            time.sleep(0.1)

    def hang(self, stack: Stack) -> str:
        """What a stuck run looks like: the streams, PostgreSQL's waiting sessions, the worker's thread stacks."""
        lines = [
            f"state {s.connection_id}/{s.stream} v{s.version} running={s.running} failed={s.failed} "
            f"lease={s.lease_owner} until={s.lease_until} crashes={s.crash_count}@{s.crash_version} "
            f"pages={s.pages_total} error={s.last_error}"
            for s in states(stack)
        ]
        if stack.rt.engine.dialect.name == "postgresql":
            with stack.rt.engine.connect() as conn:
                lines += [
                    f"pg {row.pid} {row.state} {row.wait_event_type}/{row.wait_event}: {row.query[:160]}"
                    for row in conn.execute(
                        text(
                            "SELECT pid, state, wait_event_type, wait_event, query FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                ]
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGABRT)
            time.sleep(2)
        log = [line for line in self.log.read_text(errors="replace").splitlines() if "alembic" not in line]
        return "\n".join(lines + log[-150:])


def expire_access_tokens(stack: Stack) -> None:
    """Every stored access token is past its expiry: the next page job of each connection refreshes first."""
    with stack.rt.writes.begin() as session:
        session.execute(update(Credential).values(expires_at=stack.rt.clock().replace(year=2000)))


def gmail_connection(stack: Stack, email: str) -> int:
    """A member's Gmail connection id."""
    with stack.rt.sessions() as session:
        return session.execute(
            select(Connection.id)
            .join(Member, Member.id == Connection.member_id)
            .where(Member.email == email, Connection.source == "gmail")
        ).scalar_one()


def states(stack: Stack) -> list[SyncState]:
    with stack.rt.sessions() as session:
        return list(session.execute(select(SyncState).order_by(SyncState.id)).scalars())


def natural_keys(stack: Stack) -> Keys:
    """Every stored row by its natural key (no surrogate id), as a multiset: equal stores, equal keys."""
    keys: Keys = Counter()
    with stack.rt.sessions() as s:
        member_of = {
            c: m
            for c, m in s.execute(select(Connection.id, Member.email).join(Member, Member.id == Connection.member_id))
        }
        members = {i: m for i, m in s.execute(select(Member.id, Member.email))}
        dedupe = {i: k for i, k in s.execute(select(Activity.id, Activity.dedupe_key))}
        for a in s.execute(select(Activity)).scalars():
            keys["activity", a.dedupe_key, a.kind, a.noise] += 1
        sighting_key: dict[int, tuple[Any, ...]] = {}
        for g in s.execute(select(Sighting)).scalars():
            sighting_key[g.id] = (member_of[g.connection_id], g.source, g.external_id)
            keys["sighting", *sighting_key[g.id], dedupe[g.activity_id], g.content_hash, g.noise] += 1
        for p in s.execute(select(Participant)).scalars():
            keys["participant", *sighting_key[p.sighting_id], p.role, p.email, p.person_ref, p.declined] += 1
        identities = {i.id: (i.kind, i.value) for i in s.execute(select(Identity)).scalars()}
        for i in s.execute(select(Interaction)).scalars():
            keys["interaction", dedupe[i.activity_id], members[i.member_id], *identities[i.identity_id], i.kind] += 1
        org_id = s.execute(select(Connection.org_id).limit(1)).scalar_one()
        for c in iter_contacts(s, org_id):
            relationships = tuple(
                sorted((r["member"], tuple(sorted(r["interactions"].items()))) for r in c["relationships"])
            )
            keys["contact", tuple(c["emails"]), tuple(c["phones"]), c["name"], relationships] += 1
    return keys


@dataclass(frozen=True)
class Diff:
    """lost = expected - stored, doubled = stored more often than expected, unexpected = stored - expected."""

    expected: int
    stored: int
    lost: int
    doubled: int
    unexpected: int
    examples: list[str]

    @property
    def clean(self) -> bool:
        return self.lost == self.doubled == self.unexpected == 0


def compare(expected: Keys, stored: Keys) -> Diff:
    lost = expected - stored
    doubled = Counter({k: n - expected[k] for k, n in stored.items() if k in expected and n > expected[k]})
    unexpected = Counter({k: n for k, n in stored.items() if k not in expected})
    examples = [f"lost {k}" for k in list(lost)[:3]] + [f"doubled {k}" for k in list(doubled)[:3]]
    examples += [f"unexpected {k}" for k in list(unexpected)[:3]]
    return Diff(
        expected=sum(expected.values()),
        stored=sum(stored.values()),
        lost=sum(lost.values()),
        doubled=sum(doubled.values()),
        unexpected=sum(unexpected.values()),
        examples=examples,
    )
