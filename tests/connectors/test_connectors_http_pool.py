"""Requests hand their keep-alive connections on: the next page's first call reuses the last page's TLS session."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator

import httplib2
import pytest

from connectors import google_http
from connectors.google_http import CountingHttp
from connectors.http_pool import ConnectionPool
from sandbox.server import Sandbox
from sandbox.world import generate_world


@pytest.fixture
def tls_sandbox(tmp_path: object) -> Iterator[tuple[Sandbox, str]]:
    with Sandbox(generate_world(seed=1, size=50), tls=True, cert_dir=f"{tmp_path}/ca") as sb:
        yield sb, sb.settings()["GOOGLE_API_URL"] + "gmail/v1/users/me/profile"


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> ConnectionPool:
    fresh = ConnectionPool()
    monkeypatch.setattr(google_http, "POOL", fresh)
    return fresh


def handshakes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per TLS handshake in this process (True: the server's side)."""
    seen: list[bool] = []
    real = ssl.SSLSocket.do_handshake

    def counted(self: ssl.SSLSocket, *args: object) -> None:
        seen.append(self.server_side)
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLSocket, "do_handshake", counted)
    return seen


def test_the_next_page_reuses_the_tls_connection_of_the_last(
    tls_sandbox: tuple[Sandbox, str], pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb, url = tls_sandbox
    seen = handshakes(monkeypatch)
    first = CountingHttp(ca_certs=sb.ca_path, timeout=5)
    assert first.request(url)[0].status == 401  # no token: the server answered over TLS all the same
    assert first.request(url)[0].status == 401
    second = CountingHttp(ca_certs=sb.ca_path, timeout=5)  # the next page's client, the first still alive
    assert second.request(url)[0].status == 401
    assert (first.calls, second.calls) == (2, 1)
    assert seen.count(False) == 1, "one client handshake for three requests of two clients"


def test_other_tls_settings_open_their_own_connection(
    tls_sandbox: tuple[Sandbox, str], pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb, url = tls_sandbox
    seen = handshakes(monkeypatch)
    CountingHttp(ca_certs=sb.ca_path, timeout=5).request(url)
    CountingHttp(ca_certs=sb.ca_path, timeout=7).request(url)
    assert seen.count(False) == 2


def test_a_request_that_fails_does_not_hand_its_connection_on(pool: ConnectionPool) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    http = CountingHttp(timeout=0.2)
    with pytest.raises(TimeoutError):  # the listener accepts but never answers
        http.request(url)
    assert pool.take((f"http:127.0.0.1:{listener.getsockname()[1]}", (None, 0.2))) is None
    assert not http.connections
    listener.close()


def test_a_connection_closed_by_the_peer_or_idle_too_long_is_not_handed_out() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def connected() -> httplib2.HTTPConnectionWithTimeout:
        conn = httplib2.HTTPConnectionWithTimeout(f"127.0.0.1:{port}", timeout=5)
        conn.connect()
        return conn

    pool = ConnectionPool(max_idle_seconds=30)
    alive, closed = connected(), connected()
    peer_of_alive, _ = listener.accept()
    peer_of_closed, _ = listener.accept()
    peer_of_closed.close()
    pool.give("k", alive)
    pool.give("k", closed)
    time.sleep(0.05)  # the FIN arrives
    assert pool.take("k") is alive, "the closed one is dropped, the live one handed out"
    assert pool.take("k") is None
    stale = ConnectionPool(max_idle_seconds=0.01)
    stale.give("k", alive)
    time.sleep(0.05)
    assert stale.take("k") is None
    peer_of_alive.close()
    listener.close()
