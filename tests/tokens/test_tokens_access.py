"""Single-flight refresh: one provider call per expiry, across threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from models.db import session_factory, write_session_factory
from models.tables import AuditEvent, Connection, Credential, utcnow
from tokens.access import (
    AccessToken,
    NoCredential,
    ReauthRequired,
    RefreshFailed,
    get_access_token,
    revoke_connection_tokens,
)
from tokens.consent import save_credential
from tokens.oauth import OAuthClient, TokenSet


def _seed(store, token_server, vault, *, provider="google", expired=True, refresh=True):
    """A connection whose stored access token is expired (or fresh); returns (connection_id, rt)."""
    _, _, connection_id = store.make_connection(provider)
    refresh_token = token_server.seed_refresh_token() if refresh else None
    expires_at = utcnow() + (timedelta(seconds=-5) if expired else timedelta(hours=1))
    tokens = TokenSet(access_token="at-original", refresh_token=refresh_token, expires_at=expires_at, scope=None)
    with store.sessions() as session:
        save_credential(session, connection_id=connection_id, tokens=tokens, vault=vault)
        session.commit()
    return connection_id, refresh_token


def _client_for(token_server):
    clients: dict[str, OAuthClient] = {}
    lock = threading.Lock()

    def client_for(provider: str) -> OAuthClient:
        with lock:
            if provider not in clients:
                clients[provider] = token_server.client(provider)
            return clients[provider]

    return client_for


def _get(store, token_server, vault, connection_id, **kwargs) -> AccessToken:
    return get_access_token(store.sessions, connection_id, client_for=_client_for(token_server), vault=vault, **kwargs)


def _credential(store, connection_id) -> Credential:
    with store.sessions() as session:
        return session.execute(
            select(Credential)
            .join(Connection, Connection.credential_id == Credential.id)
            .where(Connection.id == connection_id)
        ).scalar_one()


def _audit(store, connection_id) -> list[tuple[str, dict]]:
    with store.sessions() as session:
        rows = (
            session.execute(
                select(AuditEvent).where(AuditEvent.target == f"connection:{connection_id}").order_by(AuditEvent.id)
            )
            .scalars()
            .all()
        )
        return [(row.action, row.details) for row in rows if row.action != "token.store"]


def test_fresh_token_is_returned_without_a_call(store, token_server, vault) -> None:
    connection_id, _ = _seed(store, token_server, vault, expired=False)
    token = _get(store, token_server, vault, connection_id)
    assert (token.token, token.version) == ("at-original", 1)
    assert "at-original" not in repr(token)
    assert token_server.state.calls["token"] == 0


def test_a_fresh_token_is_read_while_another_transaction_holds_the_write_lock(store, token_server, vault) -> None:
    connection_id, _ = _seed(store, token_server, vault, expired=False)
    reads = session_factory(store.engine)
    with store.sessions.begin() as writer:  # a page being stored (SQLite: BEGIN IMMEDIATE holds the lock)
        writer.execute(select(Credential.id)).all()
        with ThreadPoolExecutor(1) as pool:
            token = pool.submit(_get, store, token_server, vault, connection_id, reads=reads).result(timeout=10)
    assert (token.token, token.version) == ("at-original", 1)


def test_min_ttl_and_injected_now(store, token_server, vault) -> None:
    connection_id, _ = _seed(store, token_server, vault, expired=False)
    assert _get(store, token_server, vault, connection_id, now=utcnow() + timedelta(minutes=58)).version == 1
    token = _get(store, token_server, vault, connection_id, now=utcnow() + timedelta(minutes=59, seconds=30))
    assert token.version == 2 and token_server.state.calls["token"] == 1


def test_expired_token_is_refreshed_once_and_audited(store, token_server, vault) -> None:
    connection_id, _ = _seed(store, token_server, vault)
    token = _get(store, token_server, vault, connection_id)
    assert token.token.startswith("at-") and token.token != "at-original" and token.version == 2
    assert _get(store, token_server, vault, connection_id) == token
    assert token_server.state.calls["token:refresh_token"] == 1
    events = _audit(store, connection_id)
    assert [action for action, _ in events] == ["token.refresh"]
    assert events[0][1]["version"] == 2
    assert token.token not in str(events)


@pytest.mark.timeout(120)
def test_sixteen_threads_one_refresh(store, token_server, vault) -> None:
    connection_id, _ = _seed(store, token_server, vault)
    token_server.state.delay = 0.3  # widen the race
    token_server.state.rotate = True  # single-use refresh tokens: a second refresh would fail
    client_for = _client_for(token_server)
    barrier = threading.Barrier(16)

    def worker(_: int) -> AccessToken:
        barrier.wait()
        return get_access_token(store.sessions, connection_id, client_for=client_for, vault=vault)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(worker, range(16)))
    assert token_server.state.calls["token"] == 1
    assert len({(r.token, r.version) for r in results}) == 1
    assert results[0].version == 2


def _process_worker(url, connect_args, base_url, keys, connection_id, start, queue) -> None:
    """Child process: 4 threads ask for the token at once; results go to the queue."""
    from models.db import make_engine
    from models.settings import ProviderSettings
    from tokens.vault import Vault

    engine = make_engine(url, connect_args=connect_args) if connect_args else make_engine(url)
    sessions = write_session_factory(engine)
    provider = ProviderSettings(
        name="google",
        client_id="test-client",
        client_secret="test-client-secret-value",
        auth_url=f"{base_url}/authorize",
        token_url=f"{base_url}/token",
        revoke_url=f"{base_url}/revoke",
        api_url="",
    )
    client = OAuthClient(provider, None, 30.0)
    vault = Vault(keys)

    def run() -> None:
        start.wait(30)
        try:
            got = get_access_token(sessions, connection_id, client_for=lambda _: client, vault=vault)
            queue.put((got.token, got.version))
        except Exception as exc:  # report, never hang the parent
            queue.put(("error", repr(exc)))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()


@pytest.mark.timeout(180)
def test_four_processes_of_four_threads_one_refresh(store, token_server, vault, vault_keys) -> None:
    connection_id, _ = _seed(store, token_server, vault)
    token_server.state.delay = 0.3
    token_server.state.rotate = True
    ctx = multiprocessing.get_context("fork")
    start, queue = ctx.Event(), ctx.Queue()
    processes = [
        ctx.Process(
            target=_process_worker,
            args=(store.url, store.connect_args, token_server.base_url, vault_keys, connection_id, start, queue),
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    start.set()
    results = [queue.get(timeout=120) for _ in range(16)]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert all(result[0] != "error" for result in results), results
    assert len(set(results)) == 1
    assert token_server.state.calls["token"] == 1


def test_refresh_without_new_refresh_token_keeps_the_old_one(store, token_server, vault) -> None:
    connection_id, refresh_token = _seed(store, token_server, vault)
    token_server.state.issue_refresh = False
    _get(store, token_server, vault, connection_id)
    credential = _credential(store, connection_id)
    assert vault.decrypt(credential.refresh_token) == refresh_token
    assert credential.version == 2
    _get(store, token_server, vault, connection_id, stale_version=2)  # the kept token still works
    assert token_server.state.calls["token"] == 2
    assert _audit(store, connection_id)[0][1]["rotated"] is False


def test_rotation_stores_the_new_refresh_token(store, token_server, vault) -> None:
    connection_id, refresh_token = _seed(store, token_server, vault)
    token_server.state.rotate = True
    first = _get(store, token_server, vault, connection_id)
    stored = vault.decrypt(_credential(store, connection_id).refresh_token)
    assert stored != refresh_token and stored in token_server.state.refresh_tokens
    assert refresh_token not in token_server.state.refresh_tokens
    second = _get(store, token_server, vault, connection_id, stale_version=first.version)
    assert second.version == first.version + 1  # the rotated token was usable: it was stored
    assert token_server.state.calls["token"] == 2
    assert _audit(store, connection_id)[0][1]["rotated"] is True


def test_invalid_grant_requires_reauth(store, token_server, vault) -> None:
    connection_id, _ = _seed(store, token_server, vault)
    token_server.state.refresh_error = "invalid_grant"
    with pytest.raises(ReauthRequired):
        _get(store, token_server, vault, connection_id)
    with store.sessions() as session:
        connection = session.get(Connection, connection_id)
        assert connection.status == "reauth_required"
        assert connection.last_error == "refresh token rejected; reconnect"
    assert _audit(store, connection_id)[-1][0] == "token.refresh_failed"
    with pytest.raises(ReauthRequired):  # no further provider call for a dead grant
        _get(store, token_server, vault, connection_id)
    assert token_server.state.calls["token"] == 1
    assert _credential(store, connection_id).version == 1


def test_transient_failure_is_retryable_and_audited(store, token_server, vault) -> None:
    connection_id, _ = _seed(store, token_server, vault)
    token_server.state.refresh_error = "server_error"
    with pytest.raises(RefreshFailed) as info:
        _get(store, token_server, vault, connection_id)
    assert info.value.status == 500
    with store.sessions() as session:
        assert session.get(Connection, connection_id).status == "active"
    assert _audit(store, connection_id)[-1][0] == "token.refresh_failed"
    token_server.state.refresh_error = None
    assert _get(store, token_server, vault, connection_id).version == 2


def test_no_refresh_token_means_reauth(store, token_server, vault) -> None:
    connection_id, _ = _seed(store, token_server, vault, refresh=False)
    with pytest.raises(ReauthRequired):
        _get(store, token_server, vault, connection_id)
    assert token_server.state.calls["token"] == 0


def test_stale_version_forces_exactly_one_refresh(store, token_server, vault) -> None:
    connection_id, _ = _seed(store, token_server, vault, expired=False)
    first = _get(store, token_server, vault, connection_id)
    assert first.version == 1
    client_for = _client_for(token_server)
    barrier = threading.Barrier(8)

    def worker(_: int) -> AccessToken:  # eight callers all saw a 401 on version 1
        barrier.wait()
        return get_access_token(
            store.sessions, connection_id, client_for=client_for, vault=vault, stale_version=first.version
        )

    token_server.state.delay = 0.2
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert token_server.state.calls["token"] == 1
    assert {r.version for r in results} == {2}
    # a late caller with the same stale version gets the new token, no new call
    assert _get(store, token_server, vault, connection_id, stale_version=1).version == 2
    assert token_server.state.calls["token"] == 1


def test_missing_credential(store, token_server, vault) -> None:
    _, _, connection_id = store.make_connection()
    with pytest.raises(NoCredential):
        _get(store, token_server, vault, connection_id)


@pytest.mark.parametrize("provider", ["google", "hubspot"])
def test_revoke_connection_tokens(store, token_server, vault, provider) -> None:
    connection_id, refresh_token = _seed(store, token_server, vault, provider=provider)
    with store.sessions() as session:
        outcome = revoke_connection_tokens(session, connection_id, token_server.client(provider), vault)
        session.commit()
    assert outcome.had_credential and outcome.revoked_remotely and outcome.error is None
    assert token_server.state.revoked == [refresh_token]
    with store.sessions() as session:
        assert (
            session.execute(
                select(Credential)
                .join(Connection, Connection.credential_id == Credential.id)
                .where(Connection.id == connection_id)
            ).first()
            is None
        )
    assert _audit(store, connection_id)[-1] == ("token.revoke", {"revoked_remotely": True, "error": None})


def test_revoke_provider_error_still_deletes_locally(store, token_server, vault) -> None:
    connection_id, refresh_token = _seed(store, token_server, vault)
    token_server.state.revoke_error = "html"
    with store.sessions() as session:
        outcome = revoke_connection_tokens(session, connection_id, token_server.client(), vault)
        session.commit()
    assert not outcome.revoked_remotely and "HTTP 502" in (outcome.error or "")
    assert refresh_token not in (outcome.error or "")
    with store.sessions() as session:
        assert (
            session.execute(
                select(Credential)
                .join(Connection, Connection.credential_id == Credential.id)
                .where(Connection.id == connection_id)
            ).first()
            is None
        )


def test_revoke_without_endpoint_and_without_credential(store, token_server, vault) -> None:
    connection_id, _ = _seed(store, token_server, vault, provider="microsoft")
    with store.sessions() as session:
        outcome = revoke_connection_tokens(session, connection_id, token_server.client("microsoft"), vault)
        session.commit()
        assert outcome.had_credential and not outcome.revoked_remotely and outcome.error is None
        again = revoke_connection_tokens(session, connection_id, token_server.client("microsoft"), vault)
        assert not again.had_credential
    assert token_server.state.calls["revoke"] == 0
