"""Where a dramatiq worker's memory goes: a tracemalloc snapshot taken inside the worker on request.

Imported from a `sitecustomize` on PYTHONPATH with BENCH_MEMTRACE_DIR set (and PYTHONTRACEMALLOC, so tracing
starts with the interpreter), it starts a daemon thread in the process and, through `os.register_at_fork`,
in every process forked from it (dramatiq's worker processes are forked from its master and import nothing
we could name on the command line before they run). The thread waits for `DIR/take` to appear, then dumps
`tracemalloc.take_snapshot()` to `DIR/snapshot-<pid>.bin` and writes `DIR/done-<pid>` (JSON: the traced
memory now and its peak, in bytes). A file, not a signal:
dramatiq owns the worker's signals, and its worker processes end with `os._exit` (no atexit).
`bench/memory.py --trace` drives it and compares two sizes' snapshots.
"""

from __future__ import annotations

import json
import os
import threading
import time
import tracemalloc
from pathlib import Path

ENV = "BENCH_MEMTRACE_DIR"
POLL_SECONDS = 0.2


def _wait_and_dump(directory: Path) -> None:
    while not (directory / "take").exists():
        time.sleep(POLL_SECONDS)
    pid = os.getpid()
    if not tracemalloc.is_tracing():
        (directory / f"done-{pid}").write_text("{}")
        return
    tracemalloc.take_snapshot().dump(str(directory / f"snapshot-{pid}.bin"))
    current, peak = tracemalloc.get_traced_memory()  # Python's own allocations: now, and their peak
    (directory / f"done-{pid}").write_text(json.dumps({"current": current, "peak": peak}))


def _start() -> None:
    threading.Thread(target=_wait_and_dump, args=(Path(os.environ[ENV]),), daemon=True, name="memtrace").start()


if os.environ.get(ENV):
    _start()
    os.register_at_fork(after_in_child=_start)
