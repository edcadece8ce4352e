"""The product itself works under row-level security: its runtime connects as the app role, and a
session sees the org of the job or request it serves, every org only in the system's own loops."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select, text

from models.rls import org_scope, system_scope
from models.tables import Connection, Org
from sandbox.world import generate_world
from tests.privacy.helpers import KEYS, MEMBERS, api
from web.stack import Stack, running_stack


def counts(stack: Stack) -> dict[str, int]:
    """Connections per org as one session sees them."""
    with stack.rt.sessions() as s:
        rows = s.execute(select(Org.slug, func.count(Connection.id)).join(Connection).group_by(Org.slug)).all()
    return {slug: int(n) for slug, n in rows}


def in_a_fresh_thread(stack: Stack) -> dict[str, int]:
    """What a thread with no scope of its own (a new worker or request thread) sees."""
    seen: dict[str, int] = {}
    worker = threading.Thread(target=lambda: seen.update(counts(stack)))
    worker.start()
    worker.join()
    return seen


def test_the_runtime_works_as_the_app_role_and_each_scope_sees_what_it_serves(tmp_path: Path, pg_url: str) -> None:
    world = generate_world(seed=13, size=150, org_domain="acme.test", members=MEMBERS)
    keys = ",".join(f"{org}={key}" for org, key in KEYS.items())
    with running_stack(data_dir=tmp_path, world=world, database_url=pg_url, api_keys=keys) as stack:
        stack.seed_org("acme", "acme.test", MEMBERS)
        stack.seed_org("globex", "globex.example", ("bob@acme.test",))
        stack.connect("acme", "alice@acme.test")
        stack.connect("globex", "bob@acme.test")
        assert stack.sync(timeout=300).failed == 0  # page jobs ran in worker threads, each in its org's scope
        with stack.rt.sessions() as s:
            role = s.execute(
                text("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            )
            assert role.one() == ("sxsync_app", False, False)
        everything = counts(stack)  # the test thread is the operator (running_stack's system scope)
        assert set(everything) == {"acme", "globex"} and all(everything.values())
        assert in_a_fresh_thread(stack) == {}, "a session with no scope sees no org's rows"
        with stack.rt.sessions() as s:
            acme_id = s.execute(select(Org.id).where(Org.slug == "acme")).scalar_one()
        with org_scope(acme_id):
            assert counts(stack) == {"acme": everything["acme"]}
        with system_scope():
            assert counts(stack) == everything
        feed = api(stack, "GET", "/api/network/contacts", KEYS["acme"], params={"org": "acme", "limit": 5})
        assert feed.status_code == 200 and feed.json()["items"], "a request scopes itself to the caller's org"
