"""Processes opening one fresh SQLite file at once all get WAL, none a "database is locked" at connect."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from sqlalchemy import text

from models.db import make_engine

PROCESSES = 6
TRIALS = 10


def _connect(path: str, barrier: Any) -> str:
    barrier.wait()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("PRAGMA journal_mode")).scalar_one())
    except Exception as exc:  # reported, not raised: the test names what each process saw
        return f"{type(exc).__name__}: {exc}"
    finally:
        engine.dispose()


def test_every_process_opening_a_fresh_file_at_once_gets_wal(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(PROCESSES) as pool:
        for trial in range(TRIALS):
            path = tmp_path / f"fresh-{trial}.db"
            path.touch()  # an empty file, as a fresh volume mount leaves it
            barrier = manager.Barrier(PROCESSES)
            answers = pool.starmap(_connect, [(str(path), barrier)] * PROCESSES)
            assert answers == ["wal"] * PROCESSES, answers
