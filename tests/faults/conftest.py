"""The fault suite (issue 7): deterministic failpoints and poison messages against real worker processes.

Short mode (the default, part of `make test`): each failpoint fired once over a small Gmail world.
Long mode (`SXSYNC_FAULTS_LONG=1`, `make faults FAULTS_LONG=1`): a bigger world, each failpoint fired
three times. Each scenario records its figures with the `scenario` fixture; the terminal summary
prints one line per scenario (`make faults` shows it).

Redis: database 9 of the test Redis, so a suite running on database 0 meanwhile is never flushed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from _pytest.terminal import TerminalReporter

from sandbox.world import World, generate_world
from tests.conftest import redis_database
from tests.faults.harness import Keys, natural_keys
from web.stack import Stack, running_stack

ORG = "acme"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
GMAIL_ONLY = {"sources": ["gmail"]}
LONG = os.environ.get("SXSYNC_FAULTS_LONG", "") not in ("", "0")
SIZE = 1200 if LONG else 300
PAGE_SIZE = 25
LEASE_SECONDS = 5  # the shortest the settings allow: a dead worker's page comes back within ~2 leases


def world() -> World:
    return generate_world(seed=17, size=SIZE, org_domain=DOMAIN, members=MEMBERS)


def seed(stack: Stack, members: tuple[str, ...]) -> None:
    """The org (Gmail only) and its members' consents, through the real OAuth flow."""
    stack.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
    for email in members:
        stack.connect(ORG, email)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Real Redis on database 9, flushed around the test."""
    yield from redis_database(9)


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], Keys]:
    """Clean in-process runs (SQLite, no fault) by connected members: the store a faulted run must equal."""
    runs: dict[tuple[str, ...], Keys] = {}
    for members in (MEMBERS[:2], MEMBERS):
        data_dir = tmp_path_factory.mktemp("reference")
        with running_stack(data_dir=data_dir, world=world(), database_url=f"sqlite:///{data_dir / 'ref.db'}") as ref:
            seed(ref, members)
            final = ref.sync(timeout=120)
            assert (final.running, final.failed) == (0, 0)
            runs[members] = natural_keys(ref)
    return runs


@dataclass
class Scenario:
    """One line of the report: a name and its figures (filled in as the test goes)."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)


_SCENARIOS = pytest.StashKey[Scenario]()
_REPORT: list[tuple[str, bool, Scenario]] = []


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Scenario:
    found = Scenario(request.node.name)
    request.node.stash[_SCENARIOS] = found
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    found = item.stash.get(_SCENARIOS, None)
    if found is not None and (report.when == "call" or (report.when == "setup" and report.failed)):
        _REPORT.append((found.name, bool(report.passed), found))
    return report


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not _REPORT:
        return
    terminalreporter.section(f"fault scenarios ({'long' if LONG else 'short'} mode)")
    for name, passed, found in _REPORT:
        figures = " ".join(f"{k}={v}" for k, v in found.figures.items())
        terminalreporter.write_line(f"{'PASS' if passed else 'FAIL'} {name}: {figures}")

