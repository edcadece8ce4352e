"""Fixtures: a real sb on 127.0.0.1 per test, over a world generated once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox import Sandbox, World, generate_world


@pytest.fixture(scope="session")
def world() -> World:
    # ~1,275 messages for alice: enough for the 1,200-message paging test
    return generate_world(7, size=3400)


@pytest.fixture
def sb(world: World) -> Iterator[Sandbox]:
    with Sandbox(world) as sb:
        yield sb
