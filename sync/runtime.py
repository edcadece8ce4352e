"""The process's wiring (store, vault, OAuth clients, clock, enqueue), built once from settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, session_factory, upgrade_schema, write_session_factory
from models.rls import app_role_url
from models.settings import Settings, get_settings
from tokens.clients import client_for
from tokens.oauth import OAuthClient
from tokens.secrets import stored_secret
from tokens.vault import Vault, vault_from_settings

Enqueue = Callable[[int, str, int, float], None]  # (connection_id, stream, cursor_version, delay_seconds)


def system_clock() -> datetime:
    """Wall-clock time, tz-aware UTC."""
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Everything a job needs besides its message; one per process (tests build their own)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]  # reads (and single-statement writes)
    writes: sessionmaker[Session]  # read-modify-write transactions
    vault: Vault
    clock: Callable[[], datetime] = system_clock
    enqueue: Enqueue | None = None
    _clients: dict[str, OAuthClient] = field(default_factory=dict)
    _suppression_secret: bytes | None = None

    def oauth_client(self, provider: str) -> OAuthClient:
        """The provider's OAuth client (endpoints and CA from settings), cached."""
        if provider not in self._clients:
            self._clients[provider] = client_for(
                self.settings.provider(provider), self.settings.ca_bundle or None, self.settings.http_timeout
            )
        return self._clients[provider]

    def suppression_secret(self) -> bytes:
        """The opt-out list's HMAC key (stored encrypted; stable across key rotation), cached."""
        if self._suppression_secret is None:
            self._suppression_secret = stored_secret(self.writes, self.vault, "suppression-hmac")
        return self._suppression_secret

    def send(self, connection_id: int, stream: str, cursor_version: int, delay: float = 0.0) -> None:
        """Enqueue one page job (the broker is wired in by `sync.actors`)."""
        if self.enqueue is None:
            raise RuntimeError("no broker wired: import sync.actors after setting the broker")
        self.enqueue(connection_id, stream, cursor_version, delay)


def build_runtime(settings: Settings | None = None, *, migrate: bool = True) -> Runtime:
    """Build the runtime from settings, bringing the schema up to date first."""
    settings = settings or get_settings()
    url = settings.effective_database_url
    engine = make_engine(url)
    if migrate:
        upgrade_schema(engine)
    if settings.db_app_role and engine.dialect.name == "postgresql":
        engine.dispose()  # the owner's engine only migrates; the app's work runs under row-level security
        engine = make_engine(app_role_url(url))
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        writes=write_session_factory(engine),
        vault=vault_from_settings(settings),
    )


_current: Runtime | None = None
_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process-wide runtime, built on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = build_runtime()
        return _current


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (entry points and tests)."""
    global _current
    with _lock:
        _current = runtime
