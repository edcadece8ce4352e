"""Shared fixtures: real PostgreSQL and SQLite stores, real Redis; unreachable services fail, never skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from sqlalchemy import Engine, create_engine, text

from models.db import make_engine, upgrade_schema
from models.settings import Settings

PG_ADMIN_URL = os.environ.get("SXSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SXSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _pg_schema_url(schema: str) -> str:
    """The test database with `schema` first on the search path."""
    sep = "&" if "?" in PG_ADMIN_URL else "?"
    return f"{PG_ADMIN_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test (dropped afterwards)."""
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


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An engine on a migrated, empty store."""
    eng = make_engine(store_url)
    upgrade_schema(eng)
    yield eng
    eng.dispose()


def redis_database(db: int | None = None) -> Iterator[str]:
    """Real Redis (database `db`, else REDIS_URL's own), flushed before and after; unreachable fails the test.

    Suites that run beside others own a database each (ops 13, cli 12, ops_ui 11, canary 10, faults 9).
    """
    parts = urlsplit(REDIS_URL)
    url = REDIS_URL if db is None else urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis unreachable at {url}: {exc}")
    yield url
    client.flushdb()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Real Redis, flushed around the test."""
    yield from redis_database()


def settings_vars(settings: Settings) -> dict[str, str]:
    """The SXSYNC_* variables that give another process (a worker, the CLI) these same settings."""
    return {f"SXSYNC_{name.upper()}": str(value) for name, value in settings.model_dump().items()}


def settings_env(settings: Settings) -> dict[str, str]:
    """This environment with these settings in place of any inherited SXSYNC_* variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SXSYNC_")} | settings_vars(settings)
