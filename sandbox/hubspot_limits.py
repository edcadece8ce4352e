"""HubSpot's per-account request limits: a rolling window (TEN_SECONDLY_ROLLING, search SECONDLY) and a day."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """Whether the call may go ahead, and what the rate-limit headers say about the window."""

    allowed: bool
    policy: str
    limit: int
    remaining: int
    interval_ms: int


class RollingLimits:
    """Sliding-window counters per (account, policy) plus a daily count; a refused call is not counted."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._daily: dict[str, int] = {}
        self.clock = clock

    def check(self, account: str, policy: str, limit: int | None, interval_ms: int) -> Verdict:
        """Count one call against `policy` (no limit: always allowed, reported as unlimited)."""
        if limit is None or limit <= 0:
            return Verdict(True, policy, 0, 0, interval_ms)
        with self._lock:
            now = self.clock()
            window = self._windows.setdefault((account, policy), deque())
            while window and now - window[0] >= interval_ms / 1000:
                window.popleft()
            if len(window) >= limit:
                return Verdict(False, policy, limit, 0, interval_ms)
            window.append(now)
            return Verdict(True, policy, limit, limit - len(window), interval_ms)

    def daily(self, account: str, limit: int | None) -> tuple[bool, int]:
        """(allowed, remaining today) for one more call; the sandbox's day never ends."""
        with self._lock:
            used = self._daily.get(account, 0)
            if limit is not None and used >= limit:
                return False, 0
            self._daily[account] = used + 1
            return True, (limit - used - 1) if limit is not None else 0

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._daily.clear()
