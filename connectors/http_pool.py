"""Keep-alive connections shared by a process's pages: a page's first call no longer opens a new TLS session.

Each page builds its own client (its token, its call counter), and with it httplib2 opened a new TCP and
TLS connection for the page's first call: a handshake per page, two round trips to the provider and the
key exchange's CPU on both ends. Now a request takes an idle connection for its host and TLS settings
from here and gives it back once its answer is read, whichever page (and thread) sent it; a connection
the peer has closed, or one idle longer than `MAX_IDLE_SECONDS` (under the providers' keep-alive
timeouts), is dropped rather than reused.
"""

from __future__ import annotations

import select
import threading
import time
from collections import defaultdict
from collections.abc import Hashable
from typing import Any

MAX_IDLE_SECONDS = 50.0
MAX_IDLE_PER_KEY = 16  # about one per worker thread and its read-ahead


class ConnectionPool:
    """Idle httplib2 connections by key (scheme:authority plus the TLS settings they were opened with)."""

    def __init__(self, max_idle_seconds: float = MAX_IDLE_SECONDS, max_per_key: int = MAX_IDLE_PER_KEY) -> None:
        self._lock = threading.Lock()
        self._idle: dict[Hashable, list[tuple[float, Any]]] = defaultdict(list)
        self._max_idle_seconds = max_idle_seconds
        self._max_per_key = max_per_key

    def take(self, key: Hashable) -> Any | None:
        """The most recently used live connection for `key`, or None (the caller opens one)."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                since, conn = idle.pop()
            if time.monotonic() - since <= self._max_idle_seconds and _open(conn):
                return conn
            conn.close()

    def give(self, key: Hashable, conn: Any) -> None:
        """Keep `conn` for the next page, unless it is closed or the key already has enough."""
        if not _open(conn):
            return
        with self._lock:
            idle = self._idle[key]
            if len(idle) < self._max_per_key:
                idle.append((time.monotonic(), conn))
                return
        conn.close()


def _open(conn: Any) -> bool:
    """Connected, and nothing to read: a socket readable while idle was closed (or spoken to) by the peer."""
    sock = getattr(conn, "sock", None)
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):  # closed under us
        return False
    return not readable


POOL = ConnectionPool()
