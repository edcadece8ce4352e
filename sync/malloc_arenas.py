"""Cap glibc's malloc arenas in a worker process, so that its resident set stays flat over a long backfill.

glibc gives threads up to 8 arenas per core, and each keeps the pages it once used. A worker runs its page
jobs in several threads, and each job reads the next page ahead in another: with an arena for nearly every
thread, a Gmail backfill's peak RSS grew 1.14x from 3,000 to 30,000 messages (bench.memory); with two
arenas, 1.07x. MALLOC_ARENA_MAX in the environment, read by glibc itself, wins over this default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's malloc.h
WORKER_ARENAS = 2


def limit_malloc_arenas(arenas: int = WORKER_ARENAS) -> bool:
    """mallopt(M_ARENA_MAX, arenas) unless MALLOC_ARENA_MAX is set; False where that is not glibc's malloc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:  # musl, macOS: no arenas to cap
        return False
    return bool(mallopt(M_ARENA_MAX, arenas) == 1)
