"""Ops UI fixtures: Redis on a database of its own, a real headless chromium, worker subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from models.settings import Settings
from models.tables import Connection, Member, SyncState
from sandbox.world import World, generate_world
from tests.conftest import redis_database, settings_env
from web.stack import Stack

ORG = "acme"
OTHER_ORG = "globex"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
ADMIN_KEY = "ops-admin-key-for-tests-0123456789"
ORG_KEY = "acme-api-key-for-tests"
OTHER_KEY = "globex-api-key-for-tests"
CHROMIUM = os.environ.get("SXSYNC_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GMAIL_CALLS = ("profile", "list", "get", "history", "batch")
REPO = Path(__file__).resolve().parents[2]


def small_world(size: int = 300, seed: int = 17) -> World:
    return generate_world(seed=seed, size=size, org_domain=DOMAIN, members=MEMBERS)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Real Redis on database 11 (0 is flushed by other suites, 12 and 13 are theirs), flushed around the test."""
    yield from redis_database(11)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright; missing pieces fail the test with the fix to apply."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: run scripts/ensure-browser.sh (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright Python package is missing: run scripts/ensure-browser.sh")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """A real `dramatiq worker` process on the stack's broker and store."""
    return subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "--processes", "1", "--threads", "2", "worker"],
        cwd=REPO,
        env=settings_env(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def connection_id(stack: Stack, email: str, source: str) -> int:
    """A member's connection of one source."""
    from sqlalchemy import select

    with stack.rt.sessions() as session:
        return int(
            session.execute(
                select(Connection.id)
                .join(Member, Member.id == Connection.member_id)
                .where(Member.email == email, Connection.source == source)
            ).scalar_one()
        )


def state(stack: Stack, connection: int, stream: str) -> SyncState:
    """A stream's sync state as stored now."""
    from sqlalchemy import select

    with stack.rt.sessions() as session:
        return session.execute(
            select(SyncState).where(SyncState.connection_id == connection, SyncState.stream == stream)
        ).scalar_one()


def set_state(stack: Stack, connection: int, stream: str, **values: Any) -> None:
    """Seed a stream's state (the scenario's stalls and figures)."""
    with stack.rt.writes.begin() as session:
        session.execute(
            update(SyncState).where(SyncState.connection_id == connection, SyncState.stream == stream).values(**values)
        )


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    """Poll until `check()` holds; fail with the worker's log tail otherwise."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            pytest.fail(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.1)
