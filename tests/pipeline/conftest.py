"""A product stack on a fresh store per test, with the sandbox world small enough to be quick."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.world import World, generate_world
from web.stack import Stack, running_stack

ORG = "acme"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
GMAIL_ONLY = {"sources": ["gmail"]}  # these tests are about the Gmail slice; other sources have their own


def small_world(size: int = 400, seed: int = 11) -> World:
    return generate_world(seed=seed, size=size, org_domain=DOMAIN, members=MEMBERS)


@pytest.fixture
def stack(tmp_path: Path, store_url: str) -> Iterator[Stack]:
    """The product over the sandbox on SQLite or PostgreSQL, in-process broker and worker threads."""
    with running_stack(data_dir=tmp_path, world=small_world(), database_url=store_url) as running:
        running.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
        yield running
