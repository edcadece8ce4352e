"""A worker process caps glibc's malloc arenas (sync/malloc_arenas.py), unless MALLOC_ARENA_MAX says otherwise,
and collects garbage less often (sync/gc_tuning.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[2]
ARENAS_AFTER_THREADS = """
import ctypes, ctypes.util, re, sys, tempfile, threading
sys.path.insert(0, {repo!r})
if sys.argv[1] == "worker":  # the module `dramatiq worker worker` loads
    import gc, worker
    capped = gc.get_threshold() == (10000, 2, 2) and gc.get_freeze_count() > 0
else:
    from sync.malloc_arenas import limit_malloc_arenas
    capped = limit_malloc_arenas() if sys.argv[1] == "cap" else False
start, done = threading.Barrier(9), threading.Barrier(9)
def allocate():
    start.wait()  # every thread allocates at once: glibc hands contended threads new arenas
    kept = [bytearray(64) for _ in range(20000)]
    done.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
start.wait(); done.wait()
for t in threads: t.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    heaps = len(re.findall(r'<heap nr="', open(out.name).read()))
print(capped, heaps)
"""


def arenas_after_threads(setup: str, env: dict[str, str]) -> tuple[str, int]:
    """In a fresh process after `setup` (cap, free, worker): (what setup reported, malloc heaps after 8 threads)."""
    code = ARENAS_AFTER_THREADS.format(repo=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", code, setup], env=env, capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split()
    return out[0], int(out[1])


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc arenas")
def test_eight_allocating_threads_share_two_arenas_once_capped(clean_env: dict[str, str]) -> None:
    assert arenas_after_threads("cap", clean_env) == ("True", 2)
    _, uncapped = arenas_after_threads("free", clean_env)
    assert uncapped > 2, "without the cap the threads spread over more arenas (else this test proves nothing)"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc arenas")
def test_malloc_arena_max_in_the_environment_wins(clean_env: dict[str, str]) -> None:
    assert arenas_after_threads("cap", clean_env | {"MALLOC_ARENA_MAX": "3"}) == ("False", 3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc arenas")
def test_the_worker_module_caps_the_arenas_and_tunes_the_collector(clean_env: dict[str, str], tmp_path: Path) -> None:
    env = clean_env | {"SXSYNC_DATA_DIR": str(tmp_path), "SXSYNC_BROKER_URL": "", "SXSYNC_DATABASE_URL": "",
                       "SXSYNC_SECRET_KEYS": Fernet.generate_key().decode()}  # fmt: skip
    assert arenas_after_threads("worker", env) == ("True", 2)
