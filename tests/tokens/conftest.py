"""Fixtures for tokens/: a real loopback OAuth token server and the store on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import secrets
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, upgrade_schema, write_session_factory
from models.settings import ProviderSettings
from models.tables import Connection, Member, Org
from tokens.oauth import OAuthClient
from tokens.vault import Vault

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CLIENT_ID = "test-client"
CLIENT_SECRET = "test-client-secret-value"


# --------------------------------------------------------------------------- token server


@dataclass
class TokenServerState:
    """What the fake authorization server knows, how it should misbehave, and what it was asked."""

    issue_refresh: bool = True  # include a refresh_token in refresh answers
    rotate: bool = False  # refresh tokens are single-use: each refresh issues a new one
    delay: float = 0.0  # seconds to sleep in the token endpoint (widens races)
    expires_in: int | None = 3600
    refresh_error: str | None = None  # "invalid_grant" | "server_error" | "html"
    exchange_error: str | None = None
    revoke_error: str | None = None  # "server_error" | "html"
    extra_fields: dict[str, Any] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (challenge, redirect_uri)
    refresh_tokens: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)  # every secret the server handed out
    revoked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def _reply(self, status: int, body: Any, *, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def do_GET(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            return self._reply(404, {"error": "not_found"})
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with state.lock:
            state.calls["authorize"] += 1
        if query.get("code_challenge_method") != "S256" or query.get("client_id") != CLIENT_ID:
            return self._reply(400, {"error": "invalid_request"})
        code = "code-" + secrets.token_urlsafe(12)
        with state.lock:
            state.codes[code] = (query["code_challenge"], query["redirect_uri"])
        location = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/token":
            return self._token(self._form())
        if path == "/revoke":
            return self._revoke(self._form().get("token", ""))
        return self._reply(404, {"error": "not_found"})

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        prefix = "/refresh-tokens/"
        if not path.startswith(prefix):
            return self._reply(404, {"error": "not_found"})
        return self._revoke(path[len(prefix):])

    def _revoke(self, token: str) -> None:
        state = self.server.state
        with state.lock:
            state.calls["revoke"] += 1
        if state.revoke_error == "html":
            return self._reply(502, "<html>bad gateway</html>", content_type="text/html")
        if state.revoke_error:
            return self._reply(503, {"error": state.revoke_error})
        with state.lock:
            state.revoked.append(token)
            state.refresh_tokens.discard(token)
        self._reply(200, {})

    def _token(self, form: dict[str, str]) -> None:
        state = self.server.state
        grant = form.get("grant_type", "")
        with state.lock:
            state.calls["token"] += 1
            state.calls[f"token:{grant}"] += 1
        if state.delay:
            time.sleep(state.delay)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return self._reply(401, {"error": "invalid_client"})
        if "password" in form or grant == "password":
            return self._reply(400, {"error": "unsupported_grant_type"})
        if grant == "authorization_code":
            return self._exchange(form)
        if grant == "refresh_token":
            return self._refresh(form)
        return self._reply(400, {"error": "unsupported_grant_type"})

    def _exchange(self, form: dict[str, str]) -> None:
        state = self.server.state
        if state.exchange_error:
            return self._reply(400, {"error": state.exchange_error})
        with state.lock:
            entry = state.codes.pop(form.get("code", ""), None)
        if entry is None:
            return self._reply(400, {"error": "invalid_grant", "error_description": "unknown code"})
        challenge, redirect_uri = entry
        verifier = form.get("code_verifier", "")
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if computed != challenge or form.get("redirect_uri") != redirect_uri:
            return self._reply(400, {"error": "invalid_grant", "error_description": "PKCE or redirect mismatch"})
        self._reply(200, self._issue(with_refresh=True))

    def _refresh(self, form: dict[str, str]) -> None:
        state = self.server.state
        token = form.get("refresh_token", "")
        if state.refresh_error == "html":
            return self._reply(502, "<html><body>" + "upstream exploded " * 30 + "</body></html>",
                               content_type="text/html")
        if state.refresh_error == "server_error":
            return self._reply(500, {"error": "server_error", "error_description": "try later"})
        with state.lock:
            known = token in state.refresh_tokens
        if state.refresh_error == "invalid_grant" or not known:
            # a careless provider echoes the token back: our client must mask it
            return self._reply(400, {"error": "invalid_grant", "error_description": f"token {token} revoked"})
        with state.lock:
            if state.rotate:
                state.refresh_tokens.discard(token)
        self._reply(200, self._issue(with_refresh=state.issue_refresh or state.rotate))

    def _issue(self, *, with_refresh: bool) -> dict[str, Any]:
        state = self.server.state
        body: dict[str, Any] = {"access_token": "at-" + secrets.token_urlsafe(18), "token_type": "Bearer",
                                "scope": "read write", **state.extra_fields}
        if state.expires_in is not None:
            body["expires_in"] = state.expires_in
        with state.lock:
            state.issued.append(body["access_token"])
            if with_refresh:
                body["refresh_token"] = "rt-" + secrets.token_urlsafe(18)
                state.refresh_tokens.add(body["refresh_token"])
                state.issued.append(body["refresh_token"])
        return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: TokenServerState


class TokenServer:
    """A tiny OAuth authorization server on 127.0.0.1 (optionally TLS), in a background thread."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.state = TokenServerState()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.state = self.state
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.base_url = f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def provider(self, name: str = "google") -> ProviderSettings:
        """Provider settings pointing every endpoint at this server."""
        revoke = {"hubspot": "/refresh-tokens/", "microsoft": ""}.get(name, "/revoke")
        return ProviderSettings(
            name=name, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
            auth_url=f"{self.base_url}/authorize", token_url=f"{self.base_url}/token",
            revoke_url=f"{self.base_url}{revoke}" if revoke else "", api_url=f"{self.base_url}/api/",
        )

    def client(self, name: str = "google", *, ca_bundle: str | None = None) -> OAuthClient:
        return OAuthClient(self.provider(name), ca_bundle=ca_bundle, timeout=10.0)

    def seed_refresh_token(self) -> str:
        """A refresh token the server accepts (as if issued by an earlier consent)."""
        token = "rt-" + secrets.token_urlsafe(18)
        with self.state.lock:
            self.state.refresh_tokens.add(token)
            self.state.issued.append(token)
        return token


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    server = TokenServer()
    yield server
    server.close()


@dataclass(frozen=True)
class TLSFiles:
    ca_path: str
    context: ssl.SSLContext


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A throw-away CA and a 127.0.0.1 server certificate signed by it."""
    directory = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokens test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_path), str(key_path))
    return TLSFiles(str(ca_path), context)


@pytest.fixture
def tls_server(tls_files: TLSFiles) -> Iterator[TokenServer]:
    server = TokenServer(tls=tls_files.context)
    yield server
    server.close()


# --------------------------------------------------------------------------- store


@dataclass
class Store:
    """An upgraded database and the helpers tests need to put a connection in it."""

    kind: str
    engine: Engine
    sessions: sessionmaker[Session]
    url: str
    connect_args: dict[str, Any]
    path: Path | None = None

    def make_connection(self, provider: str = "google") -> tuple[int, int, int]:
        """A fresh org, member and connection: (org_id, member_id, connection_id)."""
        with self.sessions() as session:
            org = Org(slug=f"org-{uuid.uuid4().hex[:12]}", domains=["acme.test"])
            session.add(org)
            session.flush()
            member = Member(org_id=org.id, email="alice@acme.test")
            session.add(member)
            session.flush()
            connection = Connection(org_id=org.id, member_id=member.id, source=provider, provider=provider,
                                    account="alice@acme.test")
            session.add(connection)
            session.commit()
            return org.id, member.id, connection.id

    def make_member(self) -> tuple[int, int]:
        org_id, member_id, _ = self.make_connection()
        return org_id, member_id

    def new_engine(self) -> Engine:
        """Another engine on the same database (for a child process)."""
        return make_engine(self.url, connect_args=self.connect_args) if self.connect_args else make_engine(self.url)


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str | None]:
    """A throwaway PostgreSQL schema for this test session, upgraded once, dropped at the end."""
    try:
        admin = make_engine(PG_URL)
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # a missing service is a failure, never a skip
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL}: {exc}")
    schema = f"tokens_test_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    upgrade_schema(engine)
    engine.dispose()
    yield schema
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str | None) -> Iterator[Store]:
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        upgrade_schema(engine)
        yield Store("sqlite", engine, write_session_factory(engine), url, {}, path)
        engine.dispose()
        return
    assert pg_schema is not None
    connect_args = {"options": f"-csearch_path={pg_schema}"}
    engine = make_engine(PG_URL, connect_args=connect_args)
    yield Store("postgresql", engine, write_session_factory(engine), PG_URL, connect_args)
    engine.dispose()


@pytest.fixture
def vault_keys() -> list[str]:
    return [Fernet.generate_key().decode()]


@pytest.fixture
def vault(vault_keys: list[str]) -> Vault:
    return Vault(vault_keys)


@pytest.fixture
def key(vault: Vault) -> bytes:
    return vault.signing_key()
