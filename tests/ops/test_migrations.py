"""The Alembic head is the models, and entry points starting together on an empty store migrate it once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select, table, text

from models.db import make_engine
from models.tables import Base

STARTERS = 4
# each process imports, says it is ready, waits for the common go, then does what every entry point does first
START = """
import sys, time
from pathlib import Path
from models.db import make_engine, upgrade_schema
engine = make_engine(sys.argv[1])
barrier = Path(sys.argv[2])
(barrier / f"ready-{sys.argv[3]}").touch()
while not (barrier / "go").exists():
    time.sleep(0.002)
upgrade_schema(engine)
"""


def schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return list(compare_metadata(context, Base.metadata))


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    assert schema_differences(engine) == []


def test_entry_points_starting_at_once_on_an_empty_store_migrate_it_once(store_url: str, tmp_path: Path) -> None:
    if store_url.startswith("sqlite:///"):
        Path(store_url.removeprefix("sqlite:///")).touch()  # an empty file, as a fresh volume mount leaves it
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", START, store_url, str(barrier), str(n)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(STARTERS)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(barrier.glob("ready-*"))) < STARTERS:  # every interpreter started and imported
            assert all(p.poll() is None for p in procs), "a process died before the start"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (barrier / "go").touch()
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
            assert "Traceback" not in err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(table("alembic_version"))).scalar_one() == 1
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
