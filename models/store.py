"""Small store primitives shared by writers: the org lock, bulk writes, insert-or-ignore, feed publishing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    TypeDecorator,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault
from sqlalchemy.util import get_callable_argspec

from models.arrays import INT8_MAX, INT8_MIN, packed
from models.tables import Base, Contact, Org, UTCDateTime


def core(table: type[Base]) -> Table:
    """The mapped class's Core table: selects of its columns skip the ORM's statement and row handling.

    A 300-row lookup through the ORM costs ~1.2x its Core twin in client CPU (compile state, row loading).
    """
    return cast(Table, table.__table__)


def lock_org(session: Session, org_id: int) -> int:
    """Serialize an org's network writes (row lock; SQLite's write lock does it already).

    The feed's sequence numbers are assigned under this lock, so they follow commit order.
    """
    seq = session.execute(select(Org.feed_seq).where(Org.id == org_id).with_for_update()).scalar_one()
    return int(seq)


def among(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one parameter however many values.

    An IN list's text changes with its length, so psycopg parses it anew each time and SQLAlchemy renders a
    cast per value: ~2 ms of client CPU for 500 values, against ~0.4 ms for the array (same index scans).
    Plain ints or strings go packed by models.arrays: a lookup of 500 addresses, 1.24 -> 0.92 ms of client CPU.
    On SQLite plain ints or strings go as one JSON text, `column IN (SELECT value FROM json_each(:json))` (the
    same index lookups): an IN list renders and processes a parameter per value on every run.
    """
    listed = list(values)
    if session.get_bind().dialect.name == "postgresql":
        array = _Array(column.type)
        return cast(ColumnElement[bool], column == any_(bindparam(None, listed, type_=array)))
    if _json_plain(listed):
        each = func.json_each(bindparam(None, json.dumps(listed), type_=String)).table_valued("value")
        return cast(ColumnElement[bool], column.in_(select(each.c.value)))
    return cast(ColumnElement[bool], column.in_(listed))


def _json_plain(values: list[Any]) -> bool:
    """Whether JSON holds every value as itself: all strings, or all ints SQLite stores (int8's range)."""
    kinds = set(map(type, values))
    return kinds == {str} or (kinds == {int} and min(values) >= INT8_MIN and max(values) <= INT8_MAX)


class _Array(TypeDecorator[list[Any]]):
    """ARRAY of the column's type, `packed` where its elements need no conversion of their own (models.arrays)."""

    impl = ARRAY
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        item_type = cast(ARRAY[Any], self.impl_instance).item_type
        if item_type.dialect_impl(dialect).bind_processor(dialect) is not None:
            return super().bind_processor(dialect)
        return _packed


def _packed(values: list[Any] | None) -> list[Any] | None:
    return None if values is None else packed(values)


def pairs_among(session: Session, columns: tuple[Any, Any], pairs: Sequence[tuple[Any, Any]]) -> ColumnElement[bool]:
    """`(a, b) IN (pairs)`; on PostgreSQL against `unnest(:as, :bs)`: two parameters however many pairs."""
    first, second = columns
    if session.get_bind().dialect.name != "postgresql":
        return cast(ColumnElement[bool], tuple_(first, second).in_(list(pairs)))
    zipped = (
        func.unnest(
            bindparam(None, [a for a, _ in pairs], type_=_Array(first.type)),
            bindparam(None, [b for _, b in pairs], type_=_Array(second.type)),
        )
        .table_valued("a", "b")
        .render_derived()
    )
    return tuple_(first, second).in_(select(zipped.c.a, zipped.c.b))


def insert_rows(session: Session, table: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert dict rows (all with the same keys) in one driver-level statement, for the bulk writes of a page.

    SQLAlchemy's executemany re-collects and re-processes every row's parameters (~6 µs a row on SQLite,
    ~16 µs of client CPU on PostgreSQL); here the SQL is built once per table and keys, each column's own
    bind processor (UTC times, JSON) runs only where it has one, and the rows go as tuples: SQLite's
    executemany (~3 µs a row); on PostgreSQL one `INSERT … SELECT FROM unnest(:col1, :col2, …)` of one array
    per column in binary format (~2.5 µs a row of client CPU, ~8 µs in all: a third of a row-by-row
    executemany; psycopg's text format escapes every element, ~8 µs a row), a column of plain ints or strings
    packed by models.arrays (8,000 five-column identity rows: 1.07 -> 0.88 µs a row of client CPU).
    Omitted columns get their scalar defaults, or their callable ones (`utcnow`) called per row as Core would;
    a table with a default that reads the statement's context goes through Core instead.
    """
    if not rows:
        return
    core = cast(Table, table.__table__)
    keys = tuple(rows[0])
    connection = session.connection()
    plan = _insert_plan(core, keys, connection.dialect)
    if plan is None:
        session.execute(insert(core), list(rows))
        return
    sql, fills, processors = plan
    columns = _columns(rows, keys, processors) + [fill(len(rows)) for fill in fills]
    _execute_columns(connection, sql, columns)


def _columns(rows: Sequence[dict[str, Any]], keys: Sequence[str], processors: list[Any]) -> list[list[Any]]:
    """The rows' values column by column, each through its column's bind processor (if it has one)."""
    return [
        [process(row[key]) for row in rows] if process else [row[key] for row in rows]
        for key, process in zip(keys, processors, strict=True)
    ]


def _execute_columns(connection: Connection, sql: str, columns: list[list[Any]]) -> None:
    """Run a driver-level statement of `insert_rows`/`bulk_update`: on PostgreSQL one packed array per column
    (the `unnest` form), on SQLite executemany of the rows' tuples."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(sql, tuple(map(packed, columns)))
    else:
        connection.exec_driver_sql(sql, list(zip(*columns, strict=True)))


def _pg_arrays(core: Table, names: Sequence[str], dialect: Dialect) -> str:
    """`%b::TYPE[]` per column: the binary array parameters of the `unnest` forms."""
    return ", ".join(f"%b::{core.c[n].type.compile(dialect=dialect)}[]" for n in names)


Fill = Callable[[int], list[Any]]  # an omitted column's bound values for so many rows


_plans: dict[tuple[str, tuple[str, ...], str], tuple[str, list[Fill], list[Any]] | None] = {}


def _insert_plan(core: Table, keys: tuple[str, ...], dialect: Dialect) -> tuple[str, list[Fill], list[Any]] | None:
    """(SQL, fillers of the omitted columns with defaults, bind processors) for `insert_rows`; None: use Core."""
    cache_key = (core.name, keys, dialect.name)
    if cache_key in _plans:
        return _plans[cache_key]
    made: list[Callable[[], Any] | None] = []  # per omitted column: its callable default, None for a scalar one
    scalars: list[Any] = []
    filled: list[str] = []
    for column in core.columns:
        if column.name in keys or column.primary_key or column.default is None:
            continue
        if isinstance(column.default, ScalarElementColumnDefault):
            made.append(None)
            scalars.append(column.default.arg)
        elif (call := _plain_callable(column.default)) is not None:
            made.append(call)
            scalars.append(None)
        else:
            _plans[cache_key] = None  # a default that reads the statement's context: Core runs it per row
            return None
        filled.append(column.name)
    names = [*keys, *filled]
    quote = dialect.identifier_preparer.quote
    target = f"{dialect.identifier_preparer.format_table(core)} ({', '.join(quote(n) for n in names)})"
    processors = [_bind_processor(core.c[key].type, dialect) for key in names]
    fills = [
        _filler(call, scalar, process)
        for call, scalar, process in zip(made, scalars, processors[len(keys) :], strict=True)
    ]
    # the SQL holds only the schema's own (quoted) table and column names and their types; values are bound
    if dialect.name == "postgresql":
        sql = f"INSERT INTO {target} SELECT * FROM unnest({_pg_arrays(core, names, dialect)})"  # noqa: S608
    else:
        sql = f"INSERT INTO {target} VALUES ({', '.join('?' * len(names))})"  # noqa: S608
    _plans[cache_key] = (sql, fills, processors[: len(keys)])
    return _plans[cache_key]


def _plain_callable(default: Any) -> Callable[[], Any] | None:
    """A callable default's function when it takes no context (`utcnow`, `list`), as SQLAlchemy tells them apart.

    SQLAlchemy wraps such a function in one that drops the context (`__wrapped__` is the function); one that takes
    the context is kept as it is.
    """
    call = getattr(default.arg, "__wrapped__", None) if isinstance(default, CallableColumnDefault) else None
    if call is None:
        return None
    try:
        spec = get_callable_argspec(call, no_self=True)  # SQLAlchemy's own test (ColumnDefault._maybe_wrap_callable)
    except TypeError:  # a builtin or class (`list`, `dict`): SQLAlchemy calls those without the context
        return cast(Callable[[], Any], call)
    positional = len(spec[0]) - len(spec[3] or ())
    return cast(Callable[[], Any], call) if positional == 0 else None


def _filler(call: Callable[[], Any] | None, scalar: Any, process: Any) -> Fill:
    """An omitted column's values: its scalar default processed once, or its callable default called per row."""
    if call is None:
        value = process(scalar) if process else scalar
        return lambda count: [value] * count
    if process:
        return lambda count: [process(call()) for _ in range(count)]
    return lambda count: [call() for _ in range(count)]


def _bind_processor(column_type: Any, dialect: Dialect) -> Any:
    """The column type's bind processor; for UTCDateTime on SQLite, one that writes the same text in one C call.

    SQLAlchemy's goes through the decorator (to naive UTC) then formats each field (~2.5 µs a time; a page of
    500 messages binds ~2,000 times): `isoformat` gives the same "YYYY-MM-DD HH:MM:SS.ffffff" in ~1 µs.
    """
    if dialect.name == "sqlite" and isinstance(column_type, UTCDateTime):
        return _sqlite_utc
    return column_type._cached_bind_processor(dialect)


def _sqlite_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


def insert_with_ids(session: Session, table: type[Base], rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert rows (all with the same keys) and return their new ids, in the rows' order.

    PostgreSQL: the ids come from the table's sequence in one query and the rows go in `insert_rows`,
    half the CPU of INSERT … RETURNING, whose batches bind every row's parameters by name. SQLite: the rows go
    in `insert_rows` and SQLite numbers each one past the largest id (an INTEGER PRIMARY KEY without
    AUTOINCREMENT); the first insert took the database's write lock, so nobody else's row comes between them
    and the last one's id closes a run of consecutive ids.
    """
    if not rows:
        return []
    core = cast(Table, table.__table__)
    if session.get_bind().dialect.name != "postgresql":
        insert_rows(session, table, rows)
        last = int(session.execute(select(func.last_insert_rowid())).scalar_one())
        return list(range(last - len(rows) + 1, last + 1))
    draw = select(func.nextval(func.pg_get_serial_sequence(core.name, "id")))
    ids = sorted(session.execute(draw.select_from(func.generate_series(1, len(rows)))).scalars())
    insert_rows(session, table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
    return ids


def bulk_update(
    session: Session, table: type[Base], rows: Sequence[dict[str, Any]], by: Sequence[str] = ("id",)
) -> None:
    """Per row, UPDATE where its `by` columns match, setting its other columns (every row carries the same keys).

    At the driver, as `insert_rows`: SQLite runs the UPDATE for each row's tuple (executemany, 1.5 µs a row
    against 4.6 through Core); PostgreSQL runs one `UPDATE … FROM unnest(…)` of one binary array per column
    (600 contacts: 1.6 µs a row of client CPU and 10 µs in all, against 16 and 27 for Core's statement a row).
    A row whose `by` values come again gives way to the later one there, as the row-by-row updates would.
    A table with a column set on update (`onupdate`, not among the rows' keys) goes through Core instead.
    """
    if not rows:
        return
    core = cast(Table, table.__table__)
    keys = (*(c for c in rows[0] if c not in by), *by)
    connection = session.connection()
    plan = _update_plan(core, keys, len(by), connection.dialect)
    if plan is None:
        stmt = (
            update(core)
            .where(*(core.c[c] == bindparam("w_" + c) for c in by))
            .values({c: bindparam("v_" + c) for c in keys[: len(keys) - len(by)]})
        )
        session.execute(stmt, [{("w_" if c in by else "v_") + c: v for c, v in row.items()} for row in rows])
        return
    sql, processors = plan
    if connection.dialect.name == "postgresql" and len(rows) > 1:
        rows = list({tuple(row[c] for c in by): row for row in rows}.values())
    _execute_columns(connection, sql, _columns(rows, keys, processors))


_update_plans: dict[tuple[str, tuple[str, ...], int, str], tuple[str, list[Any]] | None] = {}


def _update_plan(core: Table, keys: tuple[str, ...], by: int, dialect: Dialect) -> tuple[str, list[Any]] | None:
    """(SQL, bind processors) for `bulk_update` of `keys` (the set columns, then the `by` ones); None: use Core."""
    cache_key = (core.name, keys, by, dialect.name)
    if cache_key in _update_plans:
        return _update_plans[cache_key]
    if any(c.onupdate is not None and c.name not in keys for c in core.columns):
        _update_plans[cache_key] = None  # Core sets it (a timestamp) on every row
        return None
    quote = dialect.identifier_preparer.quote
    name = dialect.identifier_preparer.format_table(core)
    setting, matching = keys[: len(keys) - by], keys[len(keys) - by :]
    processors = [_bind_processor(core.c[key].type, dialect) for key in keys]
    # the SQL holds only the schema's own (quoted) table and column names and their types; values are bound
    if dialect.name == "postgresql":
        arrays = _pg_arrays(core, keys, dialect)
        aliases = ", ".join(f"v{i}" for i in range(len(keys)))
        assign = ", ".join(f"{quote(k)} = v.v{i}" for i, k in enumerate(setting))
        where = " AND ".join(f"{name}.{quote(k)} = v.v{i}" for i, k in enumerate(keys) if k in matching)
        sql = f"UPDATE {name} SET {assign} FROM unnest({arrays}) AS v({aliases}) WHERE {where}"  # noqa: S608
    else:
        assign = ", ".join(f"{quote(k)} = ?" for k in setting)
        where = " AND ".join(f"{quote(k)} = ?" for k in matching)
        sql = f"UPDATE {name} SET {assign} WHERE {where}"  # noqa: S608
    _update_plans[cache_key] = (sql, processors)
    return _update_plans[cache_key]


def bulk_delete(session: Session, table: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Per row, DELETE where all its columns match: one Core executemany (every row carries the same keys)."""
    if not rows:
        return
    core = cast(Table, table.__table__)
    stmt = delete(core).where(*(core.c[c] == bindparam("w_" + c) for c in rows[0]))
    session.execute(stmt, [{"w_" + c: v for c, v in row.items()} for row in rows])


def insert_ignore(session: Session, table: type[Base], rows: Sequence[dict[str, Any]], keys: list[str]) -> None:
    """Bulk insert, skipping rows whose unique key already exists."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table).on_conflict_do_nothing(index_elements=keys)
    session.execute(stmt, list(rows))


def publish_contacts(session: Session, org_id: int, contact_ids: Iterable[int]) -> int:
    """Give changed contacts the next feed sequence numbers (call with the org locked)."""
    ids = sorted(set(contact_ids))
    if not ids:
        return 0
    seq = lock_org(session, org_id)
    bulk_update(session, Contact, [{"id": cid, "feed_seq": seq + n} for n, cid in enumerate(ids, start=1)])
    session.execute(update(Org).where(Org.id == org_id).values(feed_seq=seq + len(ids)))
    return len(ids)
