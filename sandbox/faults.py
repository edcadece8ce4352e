"""Provider-neutral fault injection (latency, throttling, 5xx, junk bodies) and a Retry-After check."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

# kind -> HTTP status; each emulator renders the body in its provider's error format
FAULT_STATUS: dict[str, int] = {"429": 429, "403": 403, "500": 500, "502html": 502, "503": 503}
RETRY_AFTER_KINDS = frozenset({"429", "503"})
SCOPES = ("request", "part")


@dataclass(slots=True, frozen=True)
class Fault:
    """One injected failure: its kind, HTTP status and the Retry-After seconds to send (if any)."""

    kind: str
    status: int
    retry_after: int | None


@dataclass(slots=True)
class FaultRule:
    """Either the next `count` matching calls fail, or each fails with `probability`; the Retry-After sent
    is `retry_after` seconds, or with `retry_after_max` drawn from retry_after..retry_after_max (seeded)."""

    kind: str
    count: int | None = None
    probability: float = 0.0
    retry_after: int = 1
    scope: str = "request"
    endpoints: frozenset[str] | None = None
    retry_after_max: int | None = None

    def matches(self, scope: str, endpoint: str) -> bool:
        return self.scope == scope and (self.endpoints is None or endpoint in self.endpoints)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "probability": self.probability,
            "retry_after": self.retry_after,
            "scope": self.scope,
            "endpoints": sorted(self.endpoints) if self.endpoints is not None else None,
            "retry_after_max": self.retry_after_max,
        }


def html_error_page(status: int) -> str:
    """The kind of HTML page a front-end proxy returns instead of JSON."""
    return (
        "<!DOCTYPE html>\n<html lang=en><meta charset=utf-8><title>Error "
        f"{status} (Server Error)!!1</title><p><b>{status}.</b> <ins>That\u2019s an error.</ins>"
        "<p>The server encountered a temporary error and could not complete your request."
        "<p>Please try again in 30 seconds. <ins>That\u2019s all we know.</ins>\n"
    )


class FaultInjector:
    """Seeded, thread-safe fault plan; emulators call `draw` per request/part and report Retry-Afters."""

    def __init__(self, seed: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.clock = clock
        self.latency_ms: float = 0.0
        self.rules: list[FaultRule] = []
        self.injected: Counter[str] = Counter()
        self.early_retries = 0
        self.early_log: list[dict[str, Any]] = []
        self._not_before: dict[str, float] = {}

    # -- configuration --------------------------------------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        kind: str = "429",
        *,
        retry_after: int = 1,
        scope: str = "request",
        endpoints: Collection[str] | None = None,
    ) -> FaultRule:
        """The next n matching calls fail with `kind`."""
        return self._add(
            FaultRule(
                kind,
                count=n,
                retry_after=retry_after,
                scope=scope,
                endpoints=frozenset(endpoints) if endpoints is not None else None,
            )
        )

    def fail_randomly(
        self,
        probability: float,
        kind: str = "503",
        *,
        retry_after: int = 1,
        scope: str = "request",
        endpoints: Collection[str] | None = None,
        retry_after_max: int | None = None,
    ) -> FaultRule:
        """Each matching call fails with `kind` at this probability (seeded RNG)."""
        return self._add(
            FaultRule(
                kind,
                probability=probability,
                retry_after=retry_after,
                scope=scope,
                endpoints=frozenset(endpoints) if endpoints is not None else None,
                retry_after_max=retry_after_max,
            )
        )

    def _add(self, rule: FaultRule) -> FaultRule:
        if rule.kind not in FAULT_STATUS:
            raise ValueError(f"unknown fault kind {rule.kind!r}; one of {sorted(FAULT_STATUS)}")
        if rule.scope not in SCOPES:
            raise ValueError(f"unknown fault scope {rule.scope!r}; one of {SCOPES}")
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule and the latency (counters stay)."""
        with self._lock:
            self.rules.clear()
            self.latency_ms = 0.0

    def reset_counters(self) -> None:
        with self._lock:
            self.injected.clear()
            self.early_retries = 0
            self.early_log.clear()
            self._not_before.clear()

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Replace the plan from JSON: {"latency_ms": 50, "rules": [{"kind": "429", "count": 2}]}"""
        self.clear()
        if "seed" in spec:
            with self._lock:
                self._rng.seed(int(spec["seed"]))
        self.latency_ms = float(spec.get("latency_ms", 0.0))
        for raw in spec.get("rules", []):
            endpoints = raw.get("endpoints")
            rule = FaultRule(
                kind=str(raw.get("kind", "429")),
                count=int(raw["count"]) if raw.get("count") is not None else None,
                probability=float(raw.get("probability", 0.0)),
                retry_after=int(raw.get("retry_after", 1)),
                scope=str(raw.get("scope", "request")),
                endpoints=frozenset(endpoints) if endpoints is not None else None,
                retry_after_max=int(raw["retry_after_max"]) if raw.get("retry_after_max") is not None else None,
            )
            if rule.count is None and rule.probability <= 0:
                raise ValueError("a fault rule needs a count or a probability")
            self._add(rule)

    # -- use ----------------------------------------------------------------------------------------
    def delay(self) -> None:
        """Sleep the configured latency (call outside any lock)."""
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000.0)

    def draw(self, scope: str, endpoint: str) -> Fault | None:
        """The fault for this call, if any: counted rules first (in order), then probabilistic ones."""
        with self._lock:
            chosen: FaultRule | None = None
            for rule in self.rules:
                if rule.count is not None and rule.count > 0 and rule.matches(scope, endpoint):
                    rule.count -= 1
                    chosen = rule
                    break
            if chosen is None:
                for rule in self.rules:
                    if rule.count is None and rule.matches(scope, endpoint) and self._rng.random() < rule.probability:
                        chosen = rule
                        break
            self.rules = [r for r in self.rules if r.count is None or r.count > 0]
            if chosen is None:
                return None
            self.injected[chosen.kind] += 1
            retry = chosen.retry_after if chosen.kind in RETRY_AFTER_KINDS else None
            if retry is not None and chosen.retry_after_max is not None:
                retry = self._rng.randint(chosen.retry_after, max(chosen.retry_after, chosen.retry_after_max))
            return Fault(chosen.kind, FAULT_STATUS[chosen.kind], retry)

    def note_retry_after(self, client: str, seconds: float) -> None:
        """Remember that `client` was told to wait `seconds`."""
        with self._lock:
            due = self.clock() + seconds
            self._not_before[client] = max(due, self._not_before.get(client, 0.0))

    def check_early(self, client: str, what: str = "") -> bool:
        """Record (and return True) when `client` comes back before its Retry-After elapsed."""
        with self._lock:
            due = self._not_before.get(client)
            if due is None:
                return False
            now = self.clock()
            if now >= due:
                del self._not_before[client]
                return False
            self.early_retries += 1
            if len(self.early_log) < 1000:
                self.early_log.append({"client": client, "what": what, "early_by_s": round(due - now, 3)})
            return True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency_ms": self.latency_ms,
                "rules": [r.as_dict() for r in self.rules],
                "injected": dict(self.injected),
                "early_retries": self.early_retries,
                "early_log": list(self.early_log),
            }
