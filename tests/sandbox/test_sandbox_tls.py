"""HTTPS with the generated CA: httplib2 (googleapiclient's transport) and requests both verify it."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httplib2
import pytest
import requests
from sandbox_helpers import connect, gmail

from sandbox import Sandbox, World


@pytest.fixture
def tls_sb(world: World, tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(world, tls=True, cert_dir=str(tmp_path)) as sb:
        yield sb


def test_https_with_ca_bundle(tls_sb: Sandbox, tmp_path: Path) -> None:
    assert tls_sb.base_url.startswith("https://127.0.0.1:")
    assert tls_sb.ca_path is not None and os.path.dirname(tls_sb.ca_path) == str(tmp_path)
    health = tls_sb.base_url + "/_sandbox/health"
    assert requests.get(health, verify=tls_sb.ca_path, timeout=10).json()["ok"] is True
    localhost = health.replace("127.0.0.1", "localhost")
    assert requests.get(localhost, verify=tls_sb.ca_path, timeout=10).ok
    resp, _ = httplib2.Http(ca_certs=tls_sb.ca_path, timeout=10).request(health)
    assert resp.status == 200
    # the whole flow: requests for the browser hops, googleapiclient over httplib2 for the API
    tok = connect(tls_sb)
    profile = gmail(tls_sb, tok["access_token"]).users().getProfile(userId="me").execute()
    assert profile["emailAddress"] == "alice@acme.test"


def test_untrusted_without_ca(tls_sb: Sandbox) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls_sb.base_url + "/_sandbox/health", timeout=10)
    with pytest.raises(Exception, match=r"(?i)certificate|ssl"):
        httplib2.Http(timeout=10).request(tls_sb.base_url + "/_sandbox/health")
    # the server survives a refused handshake
    assert requests.get(tls_sb.base_url + "/_sandbox/health", verify=tls_sb.ca_path, timeout=10).ok


def test_cert_dir_is_reused(world: World, tmp_path: Path) -> None:
    with Sandbox(world, tls=True, cert_dir=str(tmp_path)) as first:
        ca = Path(first.ca_path or "").read_bytes()
    with Sandbox(world, tls=True, cert_dir=str(tmp_path)) as second:
        assert Path(second.ca_path or "").read_bytes() == ca
        assert requests.get(second.base_url + "/_sandbox/health", verify=second.ca_path, timeout=10).ok


def test_answers_are_sent_without_waiting_for_acks(tls_sb: Sandbox) -> None:
    """TCP_NODELAY on every accepted connection: a body written after its headers is not held back until
    the client ACKs them (Nagle against the client's delayed ACK stalled each keep-alive answer 40 ms)."""
    context = ssl.create_default_context(cafile=tls_sb.ca_path)
    conn = http.client.HTTPSConnection("127.0.0.1", tls_sb.port, context=context, timeout=10)
    try:
        for _ in range(2):  # the second answer on the connection is the one Nagle held
            conn.request("GET", "/_sandbox/health")
            assert conn.getresponse().read()
        accepted = list(tls_sb._server._server.connections)  # the server's side of this connection
        assert accepted
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in accepted)
    finally:
        conn.close()
