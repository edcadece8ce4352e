"""Packed PostgreSQL arrays arrive as the values they hold, NULLs included, on any engine (real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from psycopg.adapt import AdaptersMap, PyFormat

from models.arrays import DUMPERS, Bools, Int8s, Texts, Timestamps, packed, ready
from models.db import make_engine

LISTS: list[tuple[list[Any], type, str]] = [
    ([3, None, -(2**63), 2**63 - 1], Int8s, "int8"),
    (["plain", None, "", "with,comma", '{"quoted"}', "ünïcødé ✓", "back\\slash"], Texts, "text"),
    ([True, None, False], Bools, "bool"),
    (
        [
            datetime(2026, 3, 1, 9, 30, 0, 120, tzinfo=UTC),
            None,
            datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-7))),
        ],
        Timestamps,
        "timestamptz",
    ),
    ([None, None], Texts, "bool"),
]


def test_packed_lists_come_back_as_they_were(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            for values, kind, sql_type in LISTS:
                array = packed(values)
                assert type(array) is kind
                got = conn.exec_driver_sql(f"SELECT %b::{sql_type}[]", (array,)).scalar_one()
                assert got == values
    finally:
        engine.dispose()


def test_mixed_or_naive_values_stay_plain_lists() -> None:
    for values in ([1, "a"], [datetime(2026, 1, 1)], [1.5], [], [2**63]):
        assert type(packed(values)) is list


def test_ready_gives_a_map_without_them_the_packed_dumpers() -> None:
    bare = AdaptersMap()  # as SQLAlchemy's copy of psycopg's map is when the engine came before models.arrays
    ready(bare)
    assert all(bare.get_dumper(cls, PyFormat.BINARY) is dumper for cls, dumper in DUMPERS)


def test_every_connection_of_an_engine_packs_its_lists(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            adapters = conn.connection.driver_connection.adapters  # type: ignore[union-attr]
            assert all(adapters.get_dumper(cls, PyFormat.BINARY) is dumper for cls, dumper in DUMPERS)
    finally:
        engine.dispose()
