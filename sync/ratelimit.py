"""One rate budget per (provider, account) shared by every worker, so pages slow down before the provider
throttles them (DESIGN rule 5, issue 8).

The budget is a token bucket: `capacity` units refilling at `rate` units/s, spent before each HTTP request
(connectors call `spend(cost)` on the `Quota` the sync layer hands them), plus a `blocked_until` that a
Retry-After sets for the whole account: providers throttle an account, not a request, so after one worker
hears "wait 20 s" no worker of any process asks for that account for 20 s. What providers say also feeds
it: HubSpot's X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds and Salesforce's Sforce-Limit-Info
teach the account's real window (every worker learns it) and pull the level down to what is left.

Limits before an answer has taught one (documented; `SXSYNC_RATE_LIMITS` overrides, e.g.
`google=250/1,hubspot=190/10,salesforce=off`):
  google      Gmail's 250 quota units per user per second, a moving average that "allows short bursts":
              a bucket of 2 s (one batch of 100 messages.get is 500 units). Calendar and People requests
              count 1 unit against the same per-user bucket (the emulator keeps one per mailbox).
  microsoft   Outlook: 10,000 requests per 10 minutes per app and mailbox (a batch part counts as one).
  hubspot     100 requests per 10 s per app and account (Free/Starter; answers teach the real figure).
  salesforce  none until the first answer's Sforce-Limit-Info (the org's 24 h allowance).

Where the bucket lives: in Redis when the broker is Redis (one Lua script per operation, on the Redis
server's clock, so it is atomic across processes and hosts); otherwise in this process. That is exact for
the in-process broker (every worker is a thread here). With RabbitMQ each worker process paces alone:
N processes may together spend up to N times a configured limit before the provider's own Retry-After and
rate-limit headers (which every process still honours) slow them; run the broker on Redis to share it.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

from connectors.base import RateLimited
from sync.runtime import Runtime

PER_SECOND_MARGIN = 0.95  # pace a per-second quota at 95 %: our clock and the provider's never agree exactly
ROLLING_BURST = 0.03  # a rolling window's bucket holds 3 % of the window's calls ...
ROLLING_SLACK = 0.02  # ... and refills over the window plus 2 %, so no window ever holds more than the limit
MAX_SLEEP_SECONDS = 5.0  # a longer wait goes back to the queue (RateLimited) instead of holding a worker
KEY_TTL_SECONDS = 86_400  # an idle account's bucket is forgotten after a day
UNKNOWN_LEVEL = 1e18  # no limit known yet: the first one learned starts the bucket full


@dataclass(frozen=True)
class Limit:
    """A token bucket: `capacity` units, refilled at `rate` units per second."""

    rate: float
    capacity: float


def per_second(units: float, burst_seconds: float = 2.0) -> Limit:
    """A per-second quota enforced as a moving average that allows short bursts (Gmail)."""
    return Limit(units * PER_SECOND_MARGIN, units * burst_seconds)


def rolling(calls: float, window_seconds: float) -> Limit:
    """`calls` per rolling window: a small burst and a refill that keeps any window at or under the limit.

    With capacity C and rate (calls - C) / (window * (1 + slack)), any window holds at most `calls`, even
    when requests reach the provider up to `slack * window` later than they left: about 95 % of the limit.
    """
    capacity = max(1.0, calls * ROLLING_BURST)
    return Limit(max(calls - capacity, 1.0) / (window_seconds * (1 + ROLLING_SLACK)), capacity)


DOCUMENTED: dict[str, Limit | None] = {
    "google": per_second(250),
    "microsoft": rolling(10_000, 600),
    "hubspot": rolling(100, 10),
    "salesforce": None,
}


def configured_limit(spec: str, provider: str) -> Limit | None:
    """The provider's limit from `provider=UNITS/SECONDS` pairs (or `provider=off`), else the documented one."""
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = pair.partition("=")
        if name.strip() != provider:
            continue
        if value.strip() == "off":
            return None
        units, _, seconds = value.partition("/")
        try:
            amount, window = float(units), float(seconds or 1)
        except ValueError:
            raise ValueError(f"SXSYNC_RATE_LIMITS: {pair!r} is not provider=UNITS/SECONDS or provider=off") from None
        if amount <= 0 or window <= 0:
            raise ValueError(f"SXSYNC_RATE_LIMITS: {pair!r} needs positive units and seconds")
        return per_second(amount / window) if provider == "google" else rolling(amount, window)
    return DOCUMENTED.get(provider)


class Buckets(Protocol):
    """Where the buckets live: `take` spends or says how long to wait; `tell` records what a provider said."""

    def take(self, key: str, cost: float, limit: Limit | None) -> float: ...

    def tell(
        self, key: str, limit: Limit | None, *, retry_after: float, learned: Limit | None, remaining: float | None
    ) -> None: ...


@dataclass
class _State:
    level: float
    at: float
    blocked_until: float = 0.0
    learned: Limit | None = None


class LocalBuckets:
    """The buckets of one process (in-process broker; RabbitMQ without Redis: see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        self.clock = clock

    def _state(self, key: str, limit: Limit | None, now: float) -> tuple[_State, Limit | None]:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(limit.capacity if limit else UNKNOWN_LEVEL, now)
        limit = state.learned or limit
        if limit is not None:
            state.level = min(limit.capacity, state.level + max(0.0, now - state.at) * limit.rate)
        state.at = now
        return state, limit

    def take(self, key: str, cost: float, limit: Limit | None) -> float:
        with self._lock:
            now = self.clock()
            state, limit = self._state(key, limit, now)
            if state.blocked_until > now:
                return state.blocked_until - now
            if limit is None:
                return 0.0
            need = min(cost, limit.capacity)  # a request dearer than the bucket goes once it is full
            if state.level < need:
                return (need - state.level) / limit.rate
            state.level -= cost
            return 0.0

    def tell(
        self, key: str, limit: Limit | None, *, retry_after: float, learned: Limit | None, remaining: float | None
    ) -> None:
        with self._lock:
            now = self.clock()
            state, _ = self._state(key, limit, now)
            if learned is not None:
                state.learned = learned
                state.level = min(state.level, learned.capacity)
            if remaining is not None:
                state.level = min(state.level, remaining)
            if retry_after > 0:
                state.blocked_until = max(state.blocked_until, now + retry_after)
                state.level = min(state.level, 0.0)


# The bucket's hash: level, at (seconds, Redis clock), blocked (until), rate and capacity (learned only).
_REFILL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', KEYS[1], 'level', 'at', 'blocked', 'rate', 'capacity')
local rate = tonumber(h[4]) or tonumber(ARGV[1])
local capacity = tonumber(h[5]) or tonumber(ARGV[2])
local level = tonumber(h[1]) or (rate > 0 and capacity or tonumber(ARGV[#ARGV]))
if rate > 0 then
  level = math.min(capacity, level + math.max(0, now - (tonumber(h[2]) or now)) * rate)
end
local blocked = tonumber(h[3]) or 0
"""
_TAKE = (
    _REFILL
    + """
local cost = tonumber(ARGV[3])
local wait = 0
if blocked > now then
  wait = blocked - now
elseif rate > 0 then
  local need = math.min(cost, capacity)
  if level < need then wait = (need - level) / rate else level = level - cost end
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return tostring(wait)
"""
)
_TELL = (
    _REFILL
    + """
if ARGV[4] ~= '' then
  rate, capacity = tonumber(ARGV[4]), tonumber(ARGV[5])
  level = math.min(level, capacity)
  redis.call('HSET', KEYS[1], 'rate', ARGV[4], 'capacity', ARGV[5])
end
if ARGV[6] ~= '' then level = math.min(level, tonumber(ARGV[6])) end
local retry_after = tonumber(ARGV[3])
if retry_after > 0 then
  blocked = math.max(blocked, now + retry_after)
  level = math.min(level, 0)
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now), 'blocked', tostring(blocked))
redis.call('EXPIRE', KEYS[1], ARGV[7])
"""
)


class RedisBuckets:
    """The buckets in Redis, shared by every worker process: each operation is one atomic Lua script."""

    PREFIX = "sxsync:quota:"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._take = client.register_script(_TAKE)
        self._tell = client.register_script(_TELL)

    @staticmethod
    def _defaults(limit: Limit | None) -> list[str]:
        return [repr(limit.rate), repr(limit.capacity)] if limit else ["0", "0"]

    def take(self, key: str, cost: float, limit: Limit | None) -> float:
        args = [*self._defaults(limit), repr(float(cost)), str(KEY_TTL_SECONDS), repr(UNKNOWN_LEVEL)]
        return float(self._take(keys=[self.PREFIX + key], args=args))

    def tell(
        self, key: str, limit: Limit | None, *, retry_after: float, learned: Limit | None, remaining: float | None
    ) -> None:
        taught = [repr(learned.rate), repr(learned.capacity)] if learned else ["", ""]
        left = "" if remaining is None else repr(float(remaining))
        args = [*self._defaults(limit), repr(float(retry_after)), *taught, left]
        args += [str(KEY_TTL_SECONDS), repr(UNKNOWN_LEVEL)]
        self._tell(keys=[self.PREFIX + key], args=args)


@dataclass
class AccountQuota:
    """The `connectors.base.Quota` of one (provider, account): what a connector spends and tells."""

    buckets: Buckets
    key: str
    limit: Limit | None
    max_sleep: float = MAX_SLEEP_SECONDS
    sleep: Callable[[float], None] = time.sleep

    def spend(self, cost: float) -> None:
        """Wait for `cost` units (sleeping up to `max_sleep`); a longer wait is RateLimited for the queue."""
        while True:
            wait = self.buckets.take(self.key, cost, self.limit)
            if wait <= 0:
                return
            if wait > self.max_sleep:
                raise RateLimited(f"{self.key}: the account's shared rate budget is spent for {wait:.1f} s", wait)
            self.sleep(wait)

    def tell(
        self,
        *,
        retry_after: float = 0.0,
        limit: float | None = None,
        remaining: float | None = None,
        window: float | None = None,
    ) -> None:
        """Record a Retry-After (the whole account waits) and a rate-limit window the provider announced."""
        learned = rolling(limit, window) if limit and window and limit > 0 and window > 0 else None
        self.buckets.tell(self.key, self.limit, retry_after=max(retry_after, 0.0), learned=learned, remaining=remaining)


_redis: dict[str, RedisBuckets] = {}
_local: dict[int, LocalBuckets] = {}
_lock = threading.Lock()


def buckets_for(rt: Runtime) -> Buckets:
    """Redis buckets when the broker is Redis (one client per URL), else this runtime's own in-process ones."""
    url = rt.settings.broker_url
    with _lock:
        if url.startswith(("redis://", "rediss://")):
            if url not in _redis:
                _redis[url] = RedisBuckets(redis.Redis.from_url(url))
            return _redis[url]
        key = id(rt)
        if key not in _local:
            _local[key] = LocalBuckets()
            weakref.finalize(rt, _local.pop, key, None)  # a test's runtime takes its buckets along
        return _local[key]


def quota_for(rt: Runtime, provider: str, account: str) -> AccountQuota:
    """The shared budget a page job hands its connector; long waits go back to the queue within a lease."""
    return AccountQuota(
        buckets_for(rt),
        f"{provider}:{account.strip().lower()}",
        configured_limit(rt.settings.rate_limits, provider),
        max_sleep=min(MAX_SLEEP_SECONDS, rt.settings.lease_seconds / 4),
    )
