"""Thread-safe call and quota counters, overall and per account, that tests and benchmarks read back."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """`calls`: HTTP requests by endpoint kind; `ops`: API operations served (direct or batched); units."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.http_requests = 0
        self.calls: Counter[str] = Counter()
        self.ops: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.quota_units = 0
        self.accounts: dict[str, dict[str, Counter[str]]] = {}

    def _account(self, account: str) -> dict[str, Counter[str]]:
        acc = self.accounts.get(account)
        if acc is None:
            acc = self.accounts[account] = {"calls": Counter(), "ops": Counter(), "units": Counter()}
        return acc

    def call(self, kind: str, account: str | None = None, n: int = 1, *, http: bool = True) -> None:
        """Count an HTTP call of `kind` (n at once, e.g. batch parts); http=False adds no HTTP request."""
        with self._lock:
            if http:
                self.http_requests += 1
            self.calls[kind] += n
            if account is not None:
                self._account(account)["calls"][kind] += n

    def op(self, kind: str, account: str, units: int = 0) -> None:
        """Count one API operation and the quota units it consumed."""
        with self._lock:
            self.ops[kind] += 1
            self.quota_units += units
            acc = self._account(account)
            acc["ops"][kind] += 1
            acc["units"]["total"] += units

    def status(self, code: int) -> None:
        with self._lock:
            self.statuses[code] += 1

    def reset(self) -> None:
        with self._lock:
            self.http_requests = 0
            self.calls.clear()
            self.ops.clear()
            self.statuses.clear()
            self.quota_units = 0
            self.accounts.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "http_requests": self.http_requests,
                "calls": dict(self.calls),
                "ops": dict(self.ops),
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "quota_units": self.quota_units,
                "mailboxes": {
                    name: {
                        "calls": dict(acc["calls"]),
                        "ops": dict(acc["ops"]),
                        "quota_units": acc["units"]["total"],
                    }
                    for name, acc in self.accounts.items()
                },
            }
