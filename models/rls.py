"""PostgreSQL row-level security: a second wall behind the query layer's `WHERE org_id = …`.

Every table with an `org_id` column (found in the metadata, so a new table is covered the day it is
added) and every table that reaches one through a required foreign key (a child through its parent) gets
`ENABLE` + `FORCE ROW LEVEL SECURITY` and one policy: a row is visible and writable only when its org
is the transaction's `sxsync.org_id`, or when the transaction declared `sxsync.all_orgs = on` (the
cross-org jobs: opt-out, retention, export; `all_orgs` audits each use). Both are set with
`set_config(…, true)`, i.e. `SET LOCAL`: they end with the transaction, so nothing leaks through a
pooled connection. The app connects as `sxsync_app`, neither owner nor BYPASSRLS (superusers and
owners without FORCE would skip the policies).

What it guards against: a query that forgot its org filter returns nothing instead of another
org's rows. It is not a wall against SQL injection: any session may set the two settings.
Before an org is known (a job's connection id, an API key, a consent nonce), `org_of` asks the
function `sxsync_org_of`, which sees every org for that one lookup only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, MetaData, Table, event, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from models.tables import ApiKey, AuditEvent, Base, OAuthState
from models.tables import Connection as ConnectionRow

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

APP_ROLE = "sxsync_app"  # LOGIN; trust auth on this host, production gives it a credential
POLICY = "sxsync_org_v1"  # bump the suffix when the expression changes: older sxsync_org_* policies are dropped
ORG_SETTING = "sxsync.org_id"
ALL_ORGS_SETTING = "sxsync.all_orgs"
_INFO_KEY = "sxsync_rls"
# the scope of sessions that set none themselves: per thread / task, so a worker's job, a request and the
# scheduler each carry their own; unset means no org (on PostgreSQL such a session sees no org's rows)
_SCOPE: ContextVar[tuple[str, str] | None] = ContextVar("sxsync_rls_scope", default=None)

ORG_CHECK = (
    f"org_id = NULLIF(current_setting('{ORG_SETTING}', true), '')::bigint"
    f" OR current_setting('{ALL_ORGS_SETTING}', true) = 'on'"
)

EXEMPT = {
    "orgs": "the tenant directory: an API key or a signed link is resolved to its org before one is set;"
    " it holds names and domains, no personal data",
    "suppressions": "global by design (an opt-out holds in every org); it holds only keyed hashes",
    "stored_secrets": "product-wide keys (encrypted under the vault) that belong to no org; no personal data",
    "outbox": "messages to people outside any org (opt-out confirmations), deleted once delivered",
    "used_links": "nonces of used single-use links; no org, no personal data",
    "ops_samples": "installation-wide sync totals over time for the ops chart; no org, no personal data",
}

# Narrow lookups that run before an org is known (a job's connection, an API key, a consent state).
LOOKUPS: dict[str, tuple[Any, str, str]] = {
    "connection": (ConnectionRow, "id", "bigint"),
    "api_key": (ApiKey, "key_hash", "text"),
    "oauth_state": (OAuthState, "nonce", "text"),
}


def org_tables(metadata: MetaData = Base.metadata) -> list[Table]:
    """Tables that carry their org in an `org_id` column."""
    return [t for t in metadata.sorted_tables if "org_id" in t.c]


def child_tables(metadata: MetaData = Base.metadata) -> dict[Table, tuple[str, Table, str]]:
    """Tables without `org_id` whose foreign key reaches an org table: (column, parent, parent column)."""
    scoped = set(org_tables(metadata))
    found: dict[Table, tuple[str, Table, str]] = {}
    for table in metadata.sorted_tables:
        if table in scoped:
            continue
        for fk in table.foreign_keys:
            if fk.column.table in scoped and not fk.parent.nullable:
                found[table] = (fk.parent.name, fk.column.table, fk.column.name)
                break
    return found


def policy_expression(table: Table, metadata: MetaData = Base.metadata) -> str:
    """The USING / WITH CHECK expression of a protected table (a child defers to its parent's policy)."""
    if "org_id" in table.c:
        return ORG_CHECK
    column, parent, parent_column = child_tables(metadata)[table]
    # identifiers from our own metadata, never from input
    return f'EXISTS (SELECT 1 FROM "{parent.name}" p WHERE p."{parent_column}" = "{table.name}"."{column}")'  # noqa: S608


def protected_tables(metadata: MetaData = Base.metadata) -> list[Table]:
    """Every table the policies cover."""
    return org_tables(metadata) + list(child_tables(metadata))


def app_role_url(url: str) -> str:
    """The store's URL as the app role: same host, database and options, no credential of the owner's."""
    owner = make_url(url)
    return URL.create(
        owner.drivername,
        username=APP_ROLE,
        host=owner.host,
        port=owner.port,
        database=owner.database,
        query=owner.query,
    ).render_as_string()


def rls_current(conn: Connection, metadata: MetaData = Base.metadata) -> bool:
    """Whether every protected table already has RLS enabled, forced, and the current policy."""
    names = [t.name for t in protected_tables(metadata)]
    rows = conn.execute(
        text(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relname = ANY(:names)"
            " AND c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policies p"
            " WHERE p.schemaname = n.nspname AND p.tablename = c.relname AND p.policyname = :policy)"
        ),
        {"names": names, "policy": POLICY},
    ).scalar_one()
    role = conn.execute(text("SELECT count(*) FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}).scalar_one()
    return int(rows) == len(names) and int(role) == 1


def apply_rls(conn: Connection, metadata: MetaData = Base.metadata) -> None:
    """Create the app role, grant it DML, force the policies; idempotent (run under the migration lock)."""
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    if _ensure_role(conn):
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO {APP_ROLE}'))
        for table in metadata.sorted_tables:
            conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table.name}" TO {APP_ROLE}'))
        conn.execute(text(f"GRANT SELECT ON alembic_version TO {APP_ROLE}"))
        conn.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO {APP_ROLE}'))
    for table in protected_tables(metadata):
        _protect(conn, table, policy_expression(table, metadata))
    _create_lookup(conn, schema)


def _ensure_role(conn: Connection) -> bool:
    """Create the app role if missing (a concurrent creator is fine); False when we may not create roles."""
    conn.execute(
        text(
            "DO $$ BEGIN"
            f" IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN"
            f"  CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;"
            " END IF;"
            " EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;"
            f" WHEN insufficient_privilege THEN RAISE WARNING 'cannot create role {APP_ROLE}: create it as a DBA';"
            " END $$"
        )
    )
    row = conn.execute(
        text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}
    ).first()
    if row is None:
        log.warning("role %s is missing: policies applied, grants skipped", APP_ROLE)
        return False
    if row[0]:
        raise RuntimeError(f"role {APP_ROLE} is SUPERUSER or BYPASSRLS: row-level security would not apply to it")
    return True


def _protect(conn: Connection, table: Table, expression: str) -> None:
    """Enable + force RLS and (re)create the one policy, dropping older versions of it."""
    name = table.name
    conn.execute(text(f'ALTER TABLE "{name}" ENABLE ROW LEVEL SECURITY'))
    conn.execute(text(f'ALTER TABLE "{name}" FORCE ROW LEVEL SECURITY'))
    stale = conn.execute(
        text(
            "SELECT policyname FROM pg_policies WHERE schemaname = current_schema() AND tablename = :t"
            " AND policyname LIKE 'sxsync_org%'"
        ),
        {"t": name},
    ).scalars()
    for policy in list(stale):
        conn.execute(text(f'DROP POLICY "{policy}" ON "{name}"'))
    conn.execute(text(f'CREATE POLICY {POLICY} ON "{name}" FOR ALL USING ({expression}) WITH CHECK ({expression})'))


def _create_lookup(conn: Connection, schema: str) -> None:
    """`sxsync_org_of(kind, key)`: the one org a connection id, API key hash or consent nonce belongs to."""
    branches = " ".join(  # identifiers from our own models, never from input
        f"{'IF' if i == 0 else 'ELSIF'} kind = '{kind}' THEN"  # noqa: S608
        f' RETURN (SELECT org_id FROM "{model.__tablename__}" WHERE "{column}" = key::{cast});'
        for i, (kind, (model, column, cast)) in enumerate(LOOKUPS.items())
    )
    conn.execute(
        text(
            "CREATE OR REPLACE FUNCTION sxsync_org_of(kind text, key text) RETURNS bigint LANGUAGE plpgsql"
            f" STABLE SET {ALL_ORGS_SETTING} = 'on' SET search_path = \"{schema}\", pg_catalog AS $fn$"
            f" BEGIN {branches} END IF; RAISE EXCEPTION 'unknown lookup %', kind; END $fn$"
        )
    )


def scoped(session: Session, org_id: int) -> None:
    """Limit this session's transactions (this one and every later one) to one org."""
    _remember(session, (str(int(org_id)), "off"))


def org_sessions(factory: sessionmaker[Session], org_id: int) -> sessionmaker[Session]:
    """A sessionmaker like `factory` whose every session is scoped to one org (hand it to code that opens its own)."""
    return sessionmaker(class_=factory.class_, **{**factory.kw, "info": {_INFO_KEY: (str(int(org_id)), "off")}})


@contextmanager
def org_scope(org_id: int) -> Iterator[None]:
    """Every session begun inside the block (in this thread or task) sees one org: a job, a request."""
    token = _SCOPE.set((str(int(org_id)), "off"))
    try:
        yield
    finally:
        _SCOPE.reset(token)


@contextmanager
def system_scope() -> Iterator[None]:
    """Every session begun inside the block sees every org, unaudited: the system's own cross-org loops
    (scheduling, reconciling, ops figures, the operator's shell), never a path a caller's input drives."""
    token = _SCOPE.set(("", "on"))
    try:
        yield
    finally:
        _SCOPE.reset(token)


@contextmanager
def cross_org(writes: sessionmaker[Session], *, actor: str, reason: str) -> Iterator[None]:
    """A cross-org job (opt-out, retention): every session inside sees every org; the use is audited first."""
    with system_scope():
        with writes.begin() as session:
            all_orgs(session, actor=actor, reason=reason)
        yield


def system_wide(fn: Callable[P, R]) -> Callable[P, R]:
    """Run `fn` in the system scope (the scheduler's and the ops views' cross-org reads)."""

    @wraps(fn)
    def inside(*args: P.args, **kwargs: P.kwargs) -> R:
        with system_scope():
            return fn(*args, **kwargs)

    return inside


def all_orgs(session: Session, *, actor: str, reason: str, audit: bool = True) -> None:
    """The audited escape hatch for cross-org jobs (opt-out, retention, export): every org is visible.

    `audit=False` is for read-only aggregate views (metrics, the ops dashboard) that a scrape repeats.
    """
    if audit:
        session.add(
            AuditEvent(org_id=None, actor=actor, action="rls.all_orgs", target=reason[:200], details={"reason": reason})
        )
    _remember(session, ("", "on"))


def unscoped(session: Session) -> None:
    """Forget the scope: later transactions of this session see no org-scoped row on PostgreSQL."""
    _remember(session, ("", "off"))


def org_of(session: Session, kind: str, key: str | int) -> int | None:
    """Which org a connection id / API key hash / consent nonce belongs to, before any org is set."""
    model, column, _ = LOOKUPS[kind]
    if session.get_bind().dialect.name == "postgresql":
        found = session.execute(text("SELECT sxsync_org_of(:kind, :key)"), {"kind": kind, "key": str(key)})
    else:
        found = session.execute(select(model.org_id).where(getattr(model, column) == key))
    value = found.scalar_one_or_none()
    return None if value is None else int(value)


def _remember(session: Session, values: tuple[str, str]) -> None:
    """Keep the scope on the session and apply it now if a transaction is open."""
    session.info[_INFO_KEY] = values
    if session.in_transaction() and session.get_bind().dialect.name == "postgresql":
        _set(session.connection(), values)


def _set(conn: Connection, values: tuple[str, str]) -> None:
    """`SET LOCAL` both settings (transaction-local, so a pooled connection carries nothing over)."""
    conn.execute(
        text("SELECT set_config(:org_key, :org, true), set_config(:all_key, :all, true)"),
        {"org_key": ORG_SETTING, "org": values[0], "all_key": ALL_ORGS_SETTING, "all": values[1]},
    )


@event.listens_for(Session, "after_begin")
def _reapply(session: Session, _transaction: SessionTransaction, conn: Connection) -> None:
    """Each new transaction gets its session's scope, else the block's (SET LOCAL died with the last one)."""
    values = session.info.get(_INFO_KEY) or _SCOPE.get()
    if values is not None and conn.dialect.name == "postgresql":
        _set(conn, values)
