"""Engines, sessions and schema upgrades: one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models.arrays import ready
from models.rls import apply_rls, rls_current

MIGRATION_LOCK_ID = 7_243_001  # pg_advisory_lock key shared by every entry point
# libpq waits forever by default: connecting gives up after 10 s, and the kernel drops a connection whose
# peer stops acknowledging data (tcp_user_timeout, ms) or keepalive probes (idle 30 s + 3 x 10 s)
PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 10,
    "tcp_user_timeout": 60_000,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
# sqlite3 keeps each connection's last 128 prepared statements (native memory, outside Python's allocator);
# ours are mostly used once (an IN list's or a multi-row VALUES' size is in the SQL), up to ~1 MB each, so a
# worker's pooled connections grew with the pages synced (~12 MB a connection) and fragmented glibc's heap.
# 16 still keeps a statement repeated in a loop.
SQLITE_CACHED_STATEMENTS = 16
WAL_ATTEMPTS = 40  # about 40 s of waiting in all for the first switch to WAL


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for its backend (SQLite: WAL, foreign keys, immediate write locks)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": 60, "check_same_thread": False, "cached_statements": SQLITE_CACHED_STATEMENTS}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _tune_sqlite(engine)
        return engine
    connect_args = PG_CONNECT_ARGS | kwargs.pop("connect_args", {})
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args, **kwargs)
    _tune_postgresql(engine)
    return engine


def _tune_postgresql(engine: Engine) -> None:
    """Statements that bind an array (our `= ANY(:array)` lookups, `unnest` inserts) are never prepared.

    psycopg prepares a statement on its 5th run, and PostgreSQL may then cache one generic plan for it. For
    `key = ANY(:array)` on a table whose statistics lag its growth (every table of a new store during its
    first backfill) that plan scans the org's rows and tests each against the whole array, unhashed:
    ~100 ms a lookup at 15,000 rows, seconds a page. Unprepared, each run is planned for its own array
    (hashed) and the table's current size. Every other statement keeps psycopg's prepared statements and
    PostgreSQL's plan cache: forcing custom plans on all of them (`plan_cache_mode`) cost the server 70 %
    more CPU in the scale-out bench.
    """

    @event.listens_for(engine, "connect")
    def _packed_arrays(dbapi_conn: Any, _record: Any) -> None:
        ready(dbapi_conn.adapters)  # models.arrays: our lists as one binary array each, packed in C loops

    @event.listens_for(engine, "do_execute")
    def _unprepared_arrays(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
        values = parameters.values() if isinstance(parameters, dict) else parameters or ()
        if not any(isinstance(value, list) for value in values):
            return None  # the default execute
        cursor.execute(statement, parameters, prepare=False)
        return True


def _tune_sqlite(engine: Engine) -> None:
    """WAL + foreign keys; write sessions BEGIN IMMEDIATE so two writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        _enter_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _enter_wal(cur: Any) -> None:
    """Switch the file to WAL. On a fresh file several processes starting at once race for the switch, and
    SQLite answers the losers "database is locked" at once, without its busy handler: wait and try again
    (once one has switched, WAL is the file's mode and the pragma takes no lock)."""
    for attempt in range(WAL_ATTEMPTS):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (SQLite: deferred, for reads)."""
    return sessionmaker(engine, expire_on_commit=False)


def write_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for read-modify-write transactions: on SQLite they take the write lock at BEGIN,
    so a transaction never reads a snapshot that another writer invalidates before it writes."""
    return sessionmaker(engine.execution_options(sqlite_immediate=True), expire_on_commit=False)


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's config built in code: migrations ship inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


_local_lock = threading.Lock()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialize schema upgrades across processes (advisory lock / lock file) and threads."""
    with _local_lock:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})
                    conn.commit()
            return
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        lock_path = Path(database + ".migrate.lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _at_head(engine: Engine, cfg: Config) -> bool:
    """The store already carries the newest revision (read without alembic's per-start log lines)."""
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    return versions == [head]


def upgrade_schema(engine: Engine) -> None:
    """Bring the schema to head under a lock: safe when several entry points start at once."""
    cfg = alembic_config(engine)
    if _at_head(engine, cfg) and _rls_in_place(engine):
        return
    with _migration_lock(engine), engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        if conn.dialect.name == "postgresql":
            apply_rls(conn)  # after every upgrade, so a table a migration adds is covered at once
        conn.commit()


def _rls_in_place(engine: Engine) -> bool:
    """PostgreSQL: every org-scoped table already carries its forced policy (SQLite has no RLS)."""
    if engine.dialect.name != "postgresql":
        return True
    with engine.connect() as conn:
        return rls_current(conn)
