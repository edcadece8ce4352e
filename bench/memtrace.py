"""Where a dramatiq worker's memory goes: figures taken inside the worker, sampled and on request.

Imported from a `sitecustomize` on PYTHONPATH with BENCH_MEMTRACE_DIR set, it starts a daemon thread in the
process and, through `os.register_at_fork`, in every process forked from it (dramatiq's worker processes are
forked from its master and import nothing we could name on the command line before they run). The thread
appends a sample every SAMPLE_SECONDS to `DIR/samples-<pid>.jsonl` (`native()`: resident set, glibc's heap in
use and free, SQLite's own allocations), and when `DIR/take` appears it writes `DIR/done-<pid>` (JSON: the
native figures, then the resident set after `malloc_trim(0)`, which returns glibc's free pages to the kernel:
what drops is fragmentation, what stays is live) and, with PYTHONTRACEMALLOC set (tracing starts with the
interpreter), dumps `tracemalloc.take_snapshot()` to `DIR/snapshot-<pid>.bin`. A file, not a signal: dramatiq
owns the worker's signals, and its worker processes end with `os._exit` (no atexit).
`bench/memory.py --trace/--native` drives it and compares two sizes.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time
import tracemalloc
from pathlib import Path

ENV = "BENCH_MEMTRACE_DIR"
POLL_SECONDS = 0.2
SAMPLE_SECONDS = 2.0
MB = 2**20


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (2.33+): every arena's totals, in bytes."""

    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd")] + [
        (name, ctypes.c_size_t) for name in ("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
    ]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _MallInfo2
_sqlite = ctypes.CDLL("libsqlite3.so.0")  # the library Python's _sqlite3 links, so the same allocator counters
_sqlite.sqlite3_memory_used.restype = ctypes.c_int64
_sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64


def _status_mb(*keys: str) -> dict[str, float]:
    lines = Path("/proc/self/status").read_text().splitlines()
    return {k: int(v.split()[0]) / 1024 for k, _, v in (line.partition(":") for line in lines) if k in keys}


def native() -> dict[str, float]:
    """This process's memory in MB: resident set now and at its peak, glibc's heap (in use by malloc's callers,
    free but kept, mmapped blocks) and SQLite's own allocations (now and their high-water mark)."""
    info = _libc.mallinfo2()
    return _status_mb("VmRSS", "VmHWM") | {
        "heap_in_use": (info.uordblks + info.hblkhd) / MB,
        "heap_free": info.fordblks / MB,
        "sqlite": _sqlite.sqlite3_memory_used() / MB,
        "sqlite_peak": _sqlite.sqlite3_memory_highwater(0) / MB,
    }


def _run(directory: Path) -> None:
    pid, started = os.getpid(), time.monotonic()
    next_sample = started
    with (directory / f"samples-{pid}.jsonl").open("a") as samples:
        while not (directory / "take").exists():
            if time.monotonic() >= next_sample:
                samples.write(json.dumps({"t": round(time.monotonic() - started, 1)} | native()) + "\n")
                samples.flush()
                next_sample += SAMPLE_SECONDS
            time.sleep(POLL_SECONDS)
    done: dict[str, float] = native()
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(directory / f"snapshot-{pid}.bin"))
        done["python"], done["python_peak"] = (n / MB for n in tracemalloc.get_traced_memory())
    _libc.malloc_trim(0)
    done["VmRSS_trimmed"] = _status_mb("VmRSS")["VmRSS"]
    (directory / f"done-{pid}").write_text(json.dumps(done))


def _start() -> None:
    threading.Thread(target=_run, args=(Path(os.environ[ENV]),), daemon=True, name="memtrace").start()


if os.environ.get(ENV):
    _start()
    os.register_at_fork(after_in_child=_start)
