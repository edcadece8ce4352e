"""Privacy fixtures: a synced two-org stack, shared by a module's tests, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from sandbox.world import generate_world
from tests.conftest import PG_ADMIN_URL, _pg_schema_url
from tests.privacy.helpers import KEYS, MEMBERS
from web.stack import Stack, running_stack


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store shared by one module's tests (a synced stack is worth reusing), on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # a missing service is a failure, not a skip
        pytest.fail(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}")
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module")
def two_orgs(module_store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """acme (alice connected) and globex (bob connected there), synced: people both orgs know appear twice."""
    world = generate_world(seed=13, size=300, org_domain="acme.test", members=MEMBERS)
    api_keys = ",".join(f"{org}={key}" for org, key in KEYS.items())
    data_dir = tmp_path_factory.mktemp("stack")
    with running_stack(data_dir=data_dir, world=world, database_url=module_store, api_keys=api_keys) as stack:
        stack.seed_org("acme", "acme.test", MEMBERS)
        stack.seed_org("globex", "globex.example", ("bob@acme.test",))
        stack.connect("acme", "alice@acme.test")
        stack.connect("globex", "bob@acme.test")
        progress = stack.sync(timeout=300)
        assert progress.failed == 0
        yield stack
