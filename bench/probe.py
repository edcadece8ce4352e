"""Time the pipeline's write phase from outside the product, in-process or inside a Dramatiq worker.

`install(directory)` wraps two names in `sync.pipeline` (the module's globals, which `run_page` looks
up on every call, so no product code changes):

- `_commit`: the page's write transaction — ingest_page (normalize + store), the cursor's
  compare-and-swap, COMMIT, and the enqueue of the next page;
- `ingest_page`: normalize + store alone, inside that transaction.

Each call appends `kind start end cpu` (wall-clock seconds, so intervals from several processes can be
merged, and the calling thread's CPU seconds, which a busy machine inflates far less than wall time)
to `directory/probe-<pid>.txt`. `python -m dramatiq … worker bench.probe` loads it in a real
worker: with BENCH_PROBE_DIR set, importing this module installs the wrappers.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ENV = "BENCH_PROBE_DIR"
# (module, global, kind): the fetch (token + connector: HTTP, batch (de)serialization, header parsing)
# and the two halves of ingest_page (copies upserted; activities, contacts, relationships settled)
PHASES = (
    ("sync.pipeline", "_fetch", "fetch"),
    ("sync.ingest", "_upsert_copies", "upsert"),
    ("sync.ingest", "_settle", "settle"),
)
_installed = False
_lock = threading.Lock()


def install(directory: str | Path) -> None:
    """Wrap `sync.pipeline._commit`, `sync.pipeline.ingest_page` and PHASES with timers (once per process)."""
    global _installed
    import sync.pipeline as pipeline

    with _lock:
        if _installed:
            return
        _installed = True
    path = Path(directory) / f"probe-{os.getpid()}.txt"
    sink = path.open("a", buffering=1)  # line-buffered: a killed worker loses at most one line
    write_lock = threading.Lock()

    def timed(kind: str, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            cpu = time.thread_time()
            start = time.time()
            try:
                return func(*args, **kwargs)
            finally:
                end = time.time()
                cpu = time.thread_time() - cpu
                with write_lock:
                    sink.write(f"{kind} {start:.6f} {end:.6f} {cpu:.6f}\n")

        return wrapper

    pipeline._commit = timed("commit", pipeline._commit)  # type: ignore[attr-defined]
    pipeline.ingest_page = timed("ingest", pipeline.ingest_page)  # type: ignore[attr-defined]
    # finer phases, for the breakdown line; skipped quietly if the product renamed them
    import sync.ingest as ingest

    for module, attr, kind in PHASES:
        target = {"sync.pipeline": pipeline, "sync.ingest": ingest}[module]
        if callable(getattr(target, attr, None)):
            setattr(target, attr, timed(kind, getattr(target, attr)))


def read_intervals(directory: str | Path) -> dict[str, list[tuple[float, float, float]]]:
    """Every recorded (start, end, cpu) by kind, from all processes."""
    out: dict[str, list[tuple[float, float, float]]] = {}
    for path in Path(directory).glob("probe-*.txt"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4:
                out.setdefault(parts[0], []).append((float(parts[1]), float(parts[2]), float(parts[3])))
    return out


def union_seconds(intervals: Iterable[tuple[float, float, float]]) -> float:
    """Wall time during which at least one interval was open.

    Pages of one org serialize on the org lock, so summing per-call times would count lock waits
    twice; the union counts each second of write work once.
    """
    total = 0.0
    cur_start: float | None = None
    cur_end = 0.0
    for start, end, _ in sorted(intervals):
        if cur_start is None or start > cur_end:
            if cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_start is not None:
        total += cur_end - cur_start
    return total


if os.environ.get(ENV):
    install(os.environ[ENV])
