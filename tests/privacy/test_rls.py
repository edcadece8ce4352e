"""PostgreSQL row-level security: every org-scoped table is walled per org, for the app role, per transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Engine, ForeignKey, Integer, MetaData, String, Table, create_engine, func, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from models.db import make_engine, session_factory, upgrade_schema
from models.rls import (
    APP_ROLE,
    EXEMPT,
    POLICY,
    all_orgs,
    app_role_url,
    apply_rls,
    org_of,
    org_sessions,
    protected_tables,
    scoped,
    unscoped,
)
from models.tables import AuditEvent, Base, Connection, Contact, Credential, Member, Org


@dataclass
class Store:
    admin: Engine
    app: Engine
    a: int
    b: int
    a_connection: int


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    """Two orgs with a member, a connection, a credential and a contact each, written as the owner."""
    admin = make_engine(pg_url)
    upgrade_schema(admin)
    ids: list[int] = []
    connections: list[int] = []
    with session_factory(admin).begin() as s:
        for slug in ("acme", "globex"):
            org = Org(slug=slug, domains=[f"{slug}.test"], policy={}, feed_seq=0)
            s.add(org)
            s.flush()
            member = Member(org_id=org.id, email=f"rep@{slug}.test")
            s.add(member)
            s.flush()
            credential = Credential(org_id=org.id, member_id=member.id, provider="google", access_token=b"x")
            s.add(credential)
            s.flush()
            conn = Connection(
                org_id=org.id,
                member_id=member.id,
                source="gmail",
                provider="google",
                account=member.email,
                credential_id=credential.id,
            )
            s.add(conn)
            s.flush()
            s.add(Contact(org_id=org.id, name=f"Dana of {slug}"))
            ids.append(org.id)
            connections.append(conn.id)
    app = create_engine(app_role_url(pg_url), pool_size=1, max_overflow=0)
    yield Store(admin, app, ids[0], ids[1], connections[0])
    app.dispose()
    admin.dispose()


def _count(session: Session, model: type[Base]) -> int:
    return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_every_org_scoped_table_has_rls_enabled_forced_and_its_policy(store: Store) -> None:
    names = {t.name for t in protected_tables()}
    assert {t.name for t in Base.metadata.sorted_tables if "org_id" in t.c} <= names
    assert "credentials" in names  # the tokens are walled too
    with store.admin.connect() as conn:
        rows = {
            name: (rls, forced)
            for name, rls, forced in conn.execute(
                text(
                    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                )
            )
        }
        policies = {
            table: qual
            for table, qual in conn.execute(
                text("SELECT tablename, qual FROM pg_policies WHERE schemaname = current_schema() AND policyname = :p"),
                {"p": POLICY},
            )
        }
    unprotected = [
        t.name
        for t in Base.metadata.sorted_tables
        if t.name not in EXEMPT and not (rows.get(t.name) == (True, True) and t.name in policies)
    ]
    assert unprotected == [], f"tables neither under a forced policy nor exempted: {unprotected}"
    for table in protected_tables():
        expected = ("sxsync.org_id", "sxsync.all_orgs") if "org_id" in table.c else ("EXISTS",)
        assert all(part in policies[table.name] for part in expected), table.name


def test_exempt_tables_carry_no_org_and_each_has_a_reason() -> None:
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    for name, reason in EXEMPT.items():
        assert name in tables and "org_id" not in tables[name].c and len(reason) > 20


def test_the_app_role_is_neither_superuser_nor_bypassrls_nor_owner(store: Store) -> None:
    with store.admin.connect() as conn:
        superuser, bypass = conn.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}
        ).one()
        owners = set(
            conn.execute(text("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema()")).scalars()
        )
    assert not superuser and not bypass and APP_ROLE not in owners
    with store.app.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == APP_ROLE


def test_with_no_org_set_the_app_role_sees_no_row_of_any_org_scoped_table(store: Store) -> None:
    with session_factory(store.app)() as s:
        for table in protected_tables():
            assert s.execute(select(func.count()).select_from(table)).scalar_one() == 0, table.name
        assert _count(s, Org) == 2  # the tenant directory is exempt


def test_with_org_a_set_the_app_role_sees_only_org_a(store: Store) -> None:
    with session_factory(store.app)() as s:
        scoped(s, store.a)
        assert set(s.execute(select(Member.org_id)).scalars()) == {store.a}
        assert [c.name for c in s.execute(select(Contact)).scalars()] == ["Dana of acme"]
        assert s.execute(select(Credential.org_id)).scalars().all() == [store.a]
        assert s.execute(select(Connection.id)).scalars().all() == [store.a_connection]


def test_inserting_a_row_for_org_b_while_org_a_is_set_is_refused(store: Store) -> None:
    with session_factory(store.app)() as s:
        scoped(s, store.a)
        s.add(Contact(org_id=store.b, name="smuggled"))
        with pytest.raises(ProgrammingError, match="row-level security"):
            s.flush()


def test_updating_another_orgs_rows_touches_nothing(store: Store) -> None:
    with session_factory(store.app)() as s:
        scoped(s, store.a)
        done = s.execute(text("UPDATE contacts SET name = 'x' WHERE org_id = :b"), {"b": store.b})
        assert done.rowcount == 0  # type: ignore[attr-defined]
        s.commit()


def test_the_org_setting_is_transaction_local_and_never_leaks_through_the_pool(store: Store) -> None:
    factory = session_factory(store.app)  # the app engine's pool holds exactly one connection
    with factory() as s:
        scoped(s, store.a)
        assert _count(s, Member) == 1
        pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
        s.commit()
        assert _count(s, Member) == 1  # the session re-applies its scope in each new transaction
    with factory() as s:
        assert s.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid  # the same pooled connection…
        assert s.execute(text("SELECT current_setting('sxsync.org_id', true)")).scalar_one() in ("", None)
        assert _count(s, Member) == 0  # …carries no org over


def test_a_scoped_sessionmaker_scopes_every_session_it_opens(store: Store) -> None:
    factory = org_sessions(session_factory(store.app), store.b)
    for _ in range(2):
        with factory() as s:
            assert set(s.execute(select(Member.email)).scalars()) == {"rep@globex.test"}
    with factory.begin() as s:
        s.add(Contact(org_id=store.a, name="smuggled"))
        with pytest.raises(ProgrammingError, match="row-level security"):
            s.flush()


def test_unscoped_forgets_the_org_for_later_transactions(store: Store) -> None:
    with session_factory(store.app)() as s:
        scoped(s, store.a)
        assert _count(s, Member) == 1
        unscoped(s)
        assert _count(s, Member) == 0


def test_all_orgs_is_the_audited_escape_hatch_for_cross_org_jobs(store: Store) -> None:
    with session_factory(store.app)() as s:
        all_orgs(s, actor="retention", reason="retention sweep")
        assert _count(s, Member) == 2 and _count(s, Credential) == 2
        s.commit()
    with session_factory(store.admin)() as s:
        event = s.execute(select(AuditEvent).where(AuditEvent.action == "rls.all_orgs")).scalar_one()
    assert event.actor == "retention" and event.details == {"reason": "retention sweep"}


def test_an_org_is_found_from_a_connection_before_any_org_is_set(store: Store) -> None:
    with session_factory(store.app)() as s:
        assert org_of(s, "connection", store.a_connection) == store.a
        assert org_of(s, "connection", 10**12) is None
        assert org_of(s, "api_key", "no-such-hash") is None
        assert _count(s, Member) == 0  # the lookup opened nothing else


def test_a_new_org_scoped_table_and_its_children_are_covered_by_the_same_machinery(store: Store) -> None:
    extended = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(extended)
    notes = Table(
        "notes",
        extended,
        Column("id", Integer, primary_key=True),
        Column("org_id", ForeignKey("orgs.id")),
        Column("body", String(50)),
    )
    parts = Table(  # no org_id: it reaches its org through its note
        "note_parts",
        extended,
        Column("id", Integer, primary_key=True),
        Column("note_id", ForeignKey("notes.id"), nullable=False),
        Column("text", String(50)),
    )
    with store.admin.begin() as conn:
        notes.create(conn)
        parts.create(conn)
        apply_rls(conn, extended)
        conn.execute(
            text("INSERT INTO notes (id, org_id, body) VALUES (1, :a, 'a'), (2, :b, 'b')"), {"a": store.a, "b": store.b}
        )
        conn.execute(text("INSERT INTO note_parts (note_id, text) VALUES (1, 'a1'), (2, 'b1')"))
    assert {"notes", "note_parts"} <= {t.name for t in protected_tables(extended)}
    with session_factory(store.app)() as s:
        scoped(s, store.b)
        assert s.execute(text("SELECT body FROM notes")).scalars().all() == ["b"]
        assert s.execute(text("SELECT text FROM note_parts")).scalars().all() == ["b1"]
        with pytest.raises(ProgrammingError, match="row-level security"):
            s.execute(text("INSERT INTO note_parts (note_id, text) VALUES (1, 'smuggled')"))


def test_schema_upgrades_started_at_once_apply_the_policies_once_and_cleanly(pg_url: str) -> None:
    engines = [make_engine(pg_url) for _ in range(4)]
    errors: list[BaseException] = []

    def start(engine: Engine) -> None:
        try:
            upgrade_schema(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engines[0].connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM pg_policies WHERE schemaname = current_schema()")).scalar_one()
    assert count == len(protected_tables())
    for engine in engines:
        engine.dispose()


def test_a_scoped_write_lands_in_its_org(store: Store) -> None:
    with session_factory(store.app).begin() as s:
        scoped(s, store.b)
        s.add(AuditEvent(org_id=store.b, actor="t", action="x", at=datetime.now(UTC)))
    with session_factory(store.admin)() as s:
        assert s.execute(select(AuditEvent.org_id).where(AuditEvent.action == "x")).scalar_one() == store.b
