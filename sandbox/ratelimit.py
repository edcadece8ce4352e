"""Per-account token buckets in quota units, the model behind providers' per-user rate limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class QuotaBuckets:
    """A bucket per account refilling at `rate` units/s up to `rate * burst_seconds`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # account -> (level, last update)
        self.clock = clock

    def take(self, account: str, units: float, rate: float | None, burst_seconds: float = 1.0) -> float:
        """Consume units and return 0.0, or return the seconds to wait (consuming nothing)."""
        if rate is None or rate <= 0:
            return 0.0
        capacity = max(rate * burst_seconds, units)
        with self._lock:
            now = self.clock()
            level, last = self._buckets.get(account, (capacity, now))
            level = min(capacity, level + (now - last) * rate)
            if level >= units:
                self._buckets[account] = (level - units, now)
                return 0.0
            self._buckets[account] = (level, now)
            return (units - level) / rate

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
