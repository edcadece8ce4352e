"""End-to-end fixtures: the whole product (web/stack.py) over the sandbox, on SQLite and PostgreSQL.

Every test drives the product as the demo does: reps connect through the real OAuth consent flow over
HTTP, Dramatiq jobs sync through the real Gmail client library, and the store is compared with the
independent oracle (tests/e2e/oracle.py) computed from the sandbox's live mailboxes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.world import World
from tests.e2e.helpers import API_KEY, CONNECTED, DOMAIN, MEMBERS, ORG, OTHER_ORG_KEY, make_world, sync_ok
from tests.pipeline.conftest import GMAIL_ONLY
from web.stack import Stack, running_stack


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def stack(tmp_path: Path, store_url: str, world: World) -> Iterator[Stack]:
    """The product over the sandbox on the parametrized store, its clock pinned at the world's `now`."""
    with running_stack(
        data_dir=tmp_path / "stack",
        world=world,
        database_url=store_url,
        api_keys=f"{ORG}={API_KEY},globex={OTHER_ORG_KEY}",
    ) as running:
        now = world.now
        running.rt.clock = lambda: now  # the backfill window and strengths are then deterministic
        running.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
        yield running


@pytest.fixture
def backfilled(stack: Stack) -> Stack:
    """Two reps connected through the OAuth consent flow, and their mailboxes synced."""
    for email in CONNECTED:
        stack.connect(ORG, email)
    sync_ok(stack)
    return stack
