"""Every source at once, end to end: the synced store equals the oracle's network of the seeded world.

The org enables every source; two reps connect every provider through the real consent flow (as
`sxsync demo` does), everything syncs through the real client libraries, and the store's contacts,
identities, names, companies, phones, merges, interaction counts and strengths must equal what
tests/e2e/oracle_sources.py derives from the raw data the emulators serve. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.settings import Settings
from sandbox.server import Sandbox
from sandbox.world import DEMO_SEED, DEMO_SIZE, World, generate_world
from sync.connections import sources_of
from tests.e2e.helpers import CONNECTED, DOMAIN, MEMBERS, ORG, sync_ok
from tests.e2e.network_compare import network_problems
from tests.e2e.oracle_sources import Network, expected_network, read_sandbox
from web.app import PROVIDER_TEXT
from web.stack import Stack, running_stack

SEED = 0  # a world with Salesforce and HubSpot merges, phone-only records, shared meetings and logged emails
SIZE = 300
WORLDS = {"rich": (SEED, SIZE), "demo": (DEMO_SEED, DEMO_SIZE)}  # the demo's own data must equal the oracle too
BACKFILL_DAYS = int(Settings.model_fields["backfill_days"].default)  # what the stack runs with


@pytest.fixture(params=sorted(WORLDS))
def synced(request: pytest.FixtureRequest, tmp_path: Path, store_url: str) -> Iterator[Stack]:
    """The product over the sandbox with every source enabled, both reps connected to every provider, synced."""
    seed, size = WORLDS[request.param]
    world: World = generate_world(seed=seed, size=size, org_domain=DOMAIN, members=MEMBERS)
    with running_stack(data_dir=tmp_path / "stack", world=world, database_url=store_url) as stack:
        now = world.now
        stack.rt.clock = lambda: now  # windows and strengths are then deterministic
        stack.seed_org(ORG, DOMAIN, MEMBERS)  # no policy: every registered source
        for email in CONNECTED:
            for provider in PROVIDER_TEXT:
                if sources_of(provider):
                    stack.connect(ORG, email, provider)
        sync_ok(stack)
        yield stack


def oracle(stack: Stack) -> Network:
    """What DESIGN.md's rules say the store holds, from the emulators' live state."""
    now = stack.rt.clock()
    raw = read_sandbox(stack.sandbox, CONNECTED, now, stack.rt.settings.backfill_days)
    return expected_network(raw, members=MEMBERS, org_domains=(DOMAIN,), now=now)


def test_the_world_exercises_every_rule() -> None:
    """The fixed world is rich enough for the comparison to mean something (no sync needed to see it)."""
    world = generate_world(seed=SEED, size=SIZE, org_domain=DOMAIN, members=MEMBERS)
    raw = read_sandbox(Sandbox(world), CONNECTED, world.now, BACKFILL_DAYS)
    network = expected_network(raw, members=MEMBERS, org_domains=(DOMAIN,), now=world.now)
    kinds = {kind for p in network.people for tie in p.ties.values() for kind, n in tie.counts().items() if n}
    assert kinds == {"email_out", "email_in", "meeting", "call"}
    assert {c.source for c in raw.copies} == {
        "gmail", "outlook_mail", "google_calendar", "outlook_calendar", "salesforce", "hubspot",
    }  # fmt: skip
    assert any(m.startswith("salesforce:") for m in network.merges)
    assert any(m.startswith("hubspot:") for m in network.merges)
    assert any(len(p.emails) > 1 for p in network.people)  # identities tied by address books and CRMs
    assert any(not p.emails for p in network.people)  # known by a CRM id (and maybe a phone) only
    addressless = {f"ref:{r.ref}" for r in raw.records if r.kind != "user" and not r.emails and r.phones}
    assert any(p.emails and p.keys & addressless for p in network.people)  # tied to an address by a phone
    assert any(len(p.ties) > 1 for p in network.people)
    assert any(p.profile.company for p in network.people)  # CRM account names reach contacts
    assert any(p.profile.company_domain and not p.profile.company for p in network.people)  # a domain alone
    assert network.noise


def test_store_equals_the_oracle(synced: Stack) -> None:
    problems = network_problems(synced, oracle(synced))
    assert not problems, f"{len(problems)} differences from the oracle:\n  " + "\n  ".join(problems[:80])
