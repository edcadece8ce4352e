"""What the HubSpot emulator remembers: the portal's CRM, OAuth grants, knobs, limits, faults and counters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox.faults import FaultInjector
from sandbox.hubspot_auth import HubspotAuth
from sandbox.hubspot_data import PortalData, generate_portal
from sandbox.hubspot_limits import RollingLimits
from sandbox.hubspot_store import HubspotStore
from sandbox.stats import Stats
from sandbox.world import World

# knob name -> type used to coerce JSON values (admin API)
KNOBS: dict[str, str] = {
    "access_token_ttl": "int",
    "code_ttl": "int",
    "burst_limit": "int?",  # calls per burst_interval_ms per account (HubSpot: 110-190 per 10 s)
    "burst_interval_ms": "int",
    "search_per_second": "int?",  # HubSpot: 5 search requests per second per account
    "daily_limit": "int?",
    "repeat_after": "bool",  # list endpoints hand back the `after` they were given (a paging bug)
    "deny_consent": "bool",
    "default_login": "str?",
}


class HubspotState:
    """In-process handle on the HubSpot emulator; hold `lock` around reads and mutations of `store`."""

    def __init__(
        self,
        world: World,
        *,
        portal: PortalData | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lock = threading.RLock()
        self.world = world
        self.portal = portal if portal is not None else generate_portal(world)
        self._start = time.monotonic()
        self._world_ms = int(world.now.timestamp() * 1000)
        self.store = HubspotStore(self.portal, self.now_ms)
        self.auth = HubspotAuth(self.portal, clock)
        self.faults = FaultInjector(world.seed)
        self.limits = RollingLimits()
        self.stats = Stats()
        self.burst_limit: int | None = None
        self.burst_interval_ms = 10_000
        self.search_per_second: int | None = None
        self.daily_limit: int | None = None
        self.repeat_after = False
        self.deny_consent = False
        self.default_login: str | None = None
        self._defaults = self.knobs()

    def reset(self, portal: PortalData | None = None) -> None:
        """Back to a fresh emulator: the world's portal (or `portal`), default knobs, no faults, zero counters."""
        with self.lock:
            self.load_portal(portal if portal is not None else generate_portal(self.world))
            self.configure(**self._defaults)
            self.faults.clear()
            self.reset_stats()

    def load_portal(self, portal: PortalData) -> None:
        """Serve another portal (e.g. a bigger one for volume tests); grants and tokens start afresh."""
        with self.lock:
            clock = self.auth.clock
            ttl, code_ttl = self.auth.access_token_ttl, self.auth.code_ttl
            self.portal = portal
            self.store = HubspotStore(portal, self.now_ms)
            self.auth = HubspotAuth(portal, clock)
            self.auth.access_token_ttl, self.auth.code_ttl = ttl, code_ttl

    def now_ms(self) -> int:
        """The portal's clock: the world's `now` plus the time elapsed since start, never behind the wall
        clock (the HTTP Date header): a change is always later than the generated data and than any Date
        a client read before it."""
        return max(int(time.time() * 1000), self._world_ms + int((time.monotonic() - self._start) * 1000))

    @property
    def access_token_ttl(self) -> int:
        return self.auth.access_token_ttl

    @access_token_ttl.setter
    def access_token_ttl(self, value: int) -> None:
        self.auth.access_token_ttl = value

    @property
    def code_ttl(self) -> int:
        return self.auth.code_ttl

    @code_ttl.setter
    def code_ttl(self, value: int) -> None:
        self.auth.code_ttl = value

    def configure(self, **knobs: Any) -> None:
        """Set knobs by name (see KNOBS), coercing JSON-ish values."""
        with self.lock:
            for name, value in knobs.items():
                kind = KNOBS.get(name)
                if kind is None:
                    raise ValueError(f"unknown knob {name!r}; known: {sorted(KNOBS)}")
                if value is None and kind.endswith("?"):
                    coerced: Any = None
                elif kind.startswith("int"):
                    coerced = int(value)
                elif kind == "bool":
                    coerced = bool(value)
                else:
                    coerced = str(value)
                setattr(self, name, coerced)

    def knobs(self) -> dict[str, Any]:
        with self.lock:
            return {name: getattr(self, name) for name in KNOBS}

    def stats_snapshot(self) -> dict[str, Any]:
        """HTTP calls by endpoint kind (overall and per user), statuses, faults."""
        snap = self.stats.snapshot()
        snap["users"] = snap.pop("mailboxes")
        snap["faults"] = self.faults.snapshot()
        snap["early_retries"] = snap["faults"]["early_retries"]
        return snap

    def reset_stats(self) -> None:
        with self.lock:
            self.stats.reset()
            self.store.served.clear()
            self.faults.reset_counters()
            self.limits.reset()
