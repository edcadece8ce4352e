"""SQLite engines keep few prepared statements: ours are mostly one-off SQL (an IN list's size is in the text)."""

from __future__ import annotations

import ctypes

from models.db import make_engine

_sqlite = ctypes.CDLL("libsqlite3.so.0")  # the library Python's sqlite3 module links: the same counters
_sqlite.sqlite3_memory_used.restype = ctypes.c_int64
MB = 2**20


def test_one_off_statements_do_not_pile_up_in_native_memory(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        before = _sqlite.sqlite3_memory_used()
        for size in range(1000, 1100):  # 100 distinct statements of ~1,000 parameters (~0.2 MB each, prepared)
            conn.exec_driver_sql(f"SELECT id FROM t WHERE id IN ({', '.join('?' * size)})", tuple(range(size))).all()
        grown = (_sqlite.sqlite3_memory_used() - before) / MB
    engine.dispose()
    assert grown < 5, f"SQLite holds {grown:.1f} MB more after 100 one-off statements"
