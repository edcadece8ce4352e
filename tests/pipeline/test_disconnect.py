"""Disconnecting a connection revokes its grant at the provider and stops its syncs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from models.tables import AuditEvent, Connection, Credential, SyncState
from sync.connections import sources_of
from sync.scheduler import start_all
from tests.pipeline.conftest import DOMAIN, GMAIL_ONLY, MEMBERS, ORG, small_world
from web.stack import Stack, running_stack


@pytest.fixture
def keyed_stack(tmp_path: Path, store_url: str) -> Iterator[Stack]:
    with running_stack(
        data_dir=tmp_path, world=small_world(), database_url=store_url, api_keys="acme=key-acme,globex=key-globex"
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
        stack.seed_org("globex", "globex.example", ("gina@globex.example",))
        stack.connect(ORG, "alice@acme.test")
        assert stack.sync().failed == 0
        yield stack


def delete(stack: Stack, connection_id: int, key: str) -> requests.Response:
    return requests.delete(
        f"{stack.rt.settings.public_url}/api/connections/{connection_id}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_disconnect_revokes_at_the_provider_and_stops_syncing(keyed_stack: Stack) -> None:
    stack = keyed_stack
    with stack.rt.sessions() as s:
        connection_id = s.execute(select(Connection.id)).scalar_one()
    grants = list(stack.sandbox.google.grants.values())
    assert grants and not any(g.revoked for g in grants)
    response = delete(stack, connection_id, "key-acme")
    assert response.status_code == 200
    assert response.json()["id"] == connection_id and response.json()["status"] == "revoked"
    assert response.json()["erased"] > 0  # the org's default policy purges what the connection brought
    assert all(g.revoked for g in stack.sandbox.google.grants.values())
    with stack.rt.sessions() as s:
        assert s.execute(select(Connection.status)).scalar_one() == "revoked"
        assert s.execute(select(Credential)).first() is None
        assert s.execute(select(SyncState.running)).scalars().all() == [False]
        actions = set(s.execute(select(AuditEvent.action)).scalars())
    assert {"connection.disconnected", "token.revoke"} <= actions
    assert start_all(stack.rt) == 0  # nothing of a revoked connection is scheduled again


def test_another_orgs_key_or_an_unknown_id_gets_404_and_changes_nothing(keyed_stack: Stack) -> None:
    stack = keyed_stack
    with stack.rt.sessions() as s:
        connection_id = s.execute(select(Connection.id)).scalar_one()
    assert delete(stack, connection_id, "key-globex").status_code == 404
    assert delete(stack, connection_id + 1000, "key-acme").status_code == 404
    assert delete(stack, connection_id, "wrong-key").status_code == 401
    with stack.rt.sessions() as s:
        assert s.execute(select(Connection.status)).scalar_one() == "active"


def test_one_google_consent_is_one_grant_shared_by_its_sources_until_the_last_disconnects(
    tmp_path: Path, sqlite_url: str
) -> None:
    with running_stack(
        data_dir=tmp_path, world=small_world(), database_url=sqlite_url, api_keys="acme=key-acme"
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        stack.connect(ORG, "alice@acme.test")
        with stack.rt.sessions() as s:
            connections = s.execute(select(Connection.id, Connection.source, Connection.credential_id)).all()
            assert len(s.execute(select(Credential)).scalars().all()) == 1  # one grant, not one copy per source
        assert sorted(c.source for c in connections) == sorted(sources_of("google"))
        assert len({c.credential_id for c in connections}) == 1
        first, *rest = [c.id for c in connections]
        assert delete(stack, first, "key-acme").status_code == 200
        assert not any(g.revoked for g in stack.sandbox.google.grants.values())  # still used by the others
        for connection_id in rest:
            assert delete(stack, connection_id, "key-acme").status_code == 200
        assert all(g.revoked for g in stack.sandbox.google.grants.values())
        with stack.rt.sessions() as s:
            assert s.execute(select(Credential)).first() is None
