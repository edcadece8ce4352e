"""One rate budget per (provider, account) shared by every worker, so pages slow down before the provider
throttles them (DESIGN rule 5, issue 8).

Connectors call `spend(cost)` on the `Quota` the sync layer hands them before each HTTP request, and
`tell(...)` what an answer said. The budget has the shape of the provider's own limit:
  a per-second quota   a token bucket: `capacity` units refilling at `rate` units/s (Gmail);
  a rolling window     a log of the units spent in the last `window` seconds, at most `capacity` of them
                       (HubSpot's TEN_SECONDLY_ROLLING, Outlook's 10 minutes): the exact rule the provider
                       applies, so quota left unspent while pages are stored is banked, not lost. A unit is
                       logged when spent and logged again from when its answer came back (`answered`): the
                       provider counted the request somewhere in between, so however late it arrived (a
                       slow handshake, a loaded box) the log never runs ahead of the provider's count - on
                       HubSpot's 5 searches a second that matters, where a fixed margin big enough for the
                       worst delay cost a fifth of the ceiling;
  a daily allowance    a token bucket of the whole allowance refilling over the day, pulled down to what
                       the provider says is left (Salesforce).
A Retry-After blocks the whole account: providers throttle an account, not a request, so after one worker
hears "wait 20 s" no worker of any process asks for that account for 20 s. HubSpot's
X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds and Salesforce's Sforce-Limit-Info teach the
account's real limit (every worker learns it) and what is left of it.

Limits before an answer has taught one (documented; `SXSYNC_RATE_LIMITS` overrides, e.g.
`google=250/1,hubspot=190/10,salesforce=off`):
  google      Gmail's 250 quota units per user per second, a moving average that "allows short bursts":
              a bucket of 2 s (one batch of 100 messages.get is 500 units). Calendar and People requests
              count 1 unit against the same per-user bucket (the emulator keeps one per mailbox).
  microsoft   Outlook: 10,000 requests per 10 minutes per app and mailbox (a batch part counts as one).
  hubspot     100 requests per 10 s per app and account (Free/Starter; answers teach the real figure);
              CRM searches apart: 5 per second ("hubspot-search"), they send no rate-limit headers.
  salesforce  none until the first answer's Sforce-Limit-Info (the org's 24 h allowance).

Where the budget lives: in Redis when the broker is Redis (one Lua script per operation, on the Redis
server's clock, so it is atomic across processes and hosts); otherwise in this process. That is exact for
the in-process broker (every worker is a thread here). With RabbitMQ each worker process paces alone:
N processes may together spend up to N times a configured limit before the provider's own Retry-After and
rate-limit headers (which every process still honours) slow them; run the broker on Redis to share it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis

from connectors.base import RateLimited
from sync.runtime import Runtime

log = logging.getLogger("sxsync.ratelimit")

PER_SECOND_MARGIN = 0.95  # pace a per-second quota at 95 %: our clock and the provider's never agree exactly
# a spend stays in our log 2 % of a window longer than in the provider's (clocks drift; a connector that does
# not report its answers): a request's late arrival is covered by `answered`, not by a margin
ROLLING_SLACK = 0.02
LOG_WINDOW_MAX = 3600.0  # a longer window is an allowance (a bucket), not a log of every request
MAX_SLEEP_SECONDS = 5.0  # a longer wait before a page's first request goes back to the queue (RateLimited) ...
STARTED_SLEEP_SHARE = 1 / 3  # ... once a page has spent, it waits up to a third of its lease: requeued, its
# requests so far would be spent again
KEY_TTL_SECONDS = 86_400  # an idle account's budget is forgotten after a day
UNKNOWN_LEVEL = 1e18  # no limit known yet: the first one learned starts the bucket full
REDIS_TIMEOUT_SECONDS = 5.0  # a silent Redis fails the budget's call (open: see RedisBuckets), never hangs a page


@dataclass(frozen=True)
class Limit:
    """A token bucket (`capacity` units refilled at `rate` units/s), or with `window` a rolling window:
    at most `capacity` units spent in any `window` seconds."""

    rate: float
    capacity: float
    window: float = 0.0


def per_second(units: float, burst_seconds: float = 2.0) -> Limit:
    """A per-second quota enforced as a moving average that allows short bursts (Gmail)."""
    return Limit(units * PER_SECOND_MARGIN, units * burst_seconds)


def rolling(calls: float, window_seconds: float) -> Limit:
    """`calls` per rolling window; a day's allowance is a bucket that refills over the window."""
    if window_seconds > LOG_WINDOW_MAX:
        return Limit(calls / window_seconds, calls)
    return Limit(calls / window_seconds, math.floor(calls), window_seconds * (1 + ROLLING_SLACK))


DOCUMENTED: dict[str, Limit | None] = {
    "google": per_second(250),
    "microsoft": rolling(10_000, 600),
    "hubspot": rolling(100, 10),
    "hubspot-search": rolling(5, 1),
    "salesforce": None,
}
POOLS: dict[str, tuple[str, ...]] = {"hubspot": ("search",)}  # requests a provider limits apart


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
        return per_second(amount / window) if provider.startswith("google") else rolling(amount, window)
    return DOCUMENTED.get(provider)


class Buckets(Protocol):
    """Where the budgets live: `take` spends or says how long to wait; `tell` records what a provider said."""

    def take(self, key: str, cost: float, limit: Limit | None) -> float: ...

    def take_stamped(self, key: str, cost: float, limit: Limit | None) -> tuple[float, str]:
        """`take`, and the stamp a rolling window logged the spend under (for `answered`)."""
        ...

    def answered(self, key: str, cost: float, limit: Limit | None, stamp: str) -> None:
        """The answer to the spend logged under `stamp` came back: a rolling window counts it from now."""
        ...

    def tell(
        self, key: str, limit: Limit | None, *, retry_after: float, learned: Limit | None, remaining: float | None
    ) -> None: ...


@dataclass
class _State:
    level: float
    at: float
    blocked_until: float = 0.0
    learned: Limit | None = None
    spent: deque[float] = field(default_factory=deque)  # a rolling window's spends, one entry per unit


class LocalBuckets:
    """The budgets of one process (in-process broker; RabbitMQ without Redis: see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        self.clock = clock

    def _state(
        self, key: str, limit: Limit | None, now: float, learned: Limit | None = None
    ) -> tuple[_State, Limit | None]:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State(UNKNOWN_LEVEL, now)
        if learned is not None:
            state.learned = learned
        limit = state.learned or limit
        if limit is not None and limit.window:
            while state.spent and state.spent[0] <= now - limit.window:
                state.spent.popleft()
        elif limit is not None:
            state.level = min(limit.capacity, state.level + max(0.0, now - state.at) * limit.rate)
        state.at = now
        return state, limit

    def take(self, key: str, cost: float, limit: Limit | None) -> float:
        return self.take_stamped(key, cost, limit)[0]

    def take_stamped(self, key: str, cost: float, limit: Limit | None) -> tuple[float, str]:
        with self._lock:
            now = self.clock()
            stamp = repr(now)
            state, limit = self._state(key, limit, now)
            if state.blocked_until > now:
                return state.blocked_until - now, stamp
            if limit is None:
                return 0.0, stamp
            if limit.window:
                units = math.ceil(cost)
                over = len(state.spent) + units - int(limit.capacity)
                if over > 0 and state.spent:  # wait until enough of the window's spends have left it
                    return state.spent[min(over, len(state.spent)) - 1] + limit.window - now, stamp
                state.spent.extend([now] * units)
                return 0.0, stamp
            need = min(cost, limit.capacity)  # a request dearer than the bucket goes once it is full
            if state.level < need:
                return (need - state.level) / limit.rate, stamp
            state.level -= cost
            return 0.0, stamp

    def answered(self, key: str, cost: float, limit: Limit | None, stamp: str) -> None:
        with self._lock:
            now = self.clock()
            state, limit = self._state(key, limit, now)
            if limit is None or not limit.window:
                return
            units, spent_at = math.ceil(cost), float(stamp)
            for _ in range(units):
                if spent_at in state.spent:  # still in the window: leaves it for now (the log stays sorted)
                    state.spent.remove(spent_at)
            state.spent.extend([now] * units)

    def tell(
        self, key: str, limit: Limit | None, *, retry_after: float, learned: Limit | None, remaining: float | None
    ) -> None:
        with self._lock:
            now = self.clock()
            state, limit = self._state(key, limit, now, learned)
            if remaining is not None and limit is not None and limit.window:
                missing = int(limit.capacity) - len(state.spent) - math.ceil(remaining)
                state.spent.extend([now] * max(missing, 0))  # spent elsewhere: count it as spent now
            elif remaining is not None:
                state.level = min(state.level, remaining)
            if retry_after > 0:
                state.blocked_until = max(state.blocked_until, now + retry_after)
                state.level = min(state.level, 0.0)


# KEYS: the budget's hash (level, at, blocked: seconds on the Redis clock; rate, capacity, window: a learned
# limit; seq) and its rolling window's log (a sorted set, one member per unit spent, scored by time).
# ARGV: the default limit's rate, capacity, window ('0' '0' '0': none), the TTL, UNKNOWN_LEVEL, then the
# operation's own arguments from ARGV[6].
_STATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', KEYS[1], 'level', 'at', 'blocked', 'rate', 'capacity', 'window')
local rate, capacity, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if h[4] then rate, capacity, window = tonumber(h[4]), tonumber(h[5]), tonumber(h[6]) end
%s
local blocked = tonumber(h[3]) or 0
local level = tonumber(h[1]) or tonumber(ARGV[5])
local stamp = tostring(now)
local used = 0
if window > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  used = redis.call('ZCARD', KEYS[2])
elseif rate > 0 then
  level = math.min(capacity, level + math.max(0, now - (tonumber(h[2]) or now)) * rate)
end
local function spend(units)
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', units)
  for i = 0, units - 1 do redis.call('ZADD', KEYS[2], stamp, tostring(seq - i)) end
end
"""
_SAVE = """
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now), 'blocked', tostring(blocked))
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
"""
_TAKE = (
    _STATE % ""
    + """
local cost = tonumber(ARGV[6])
local wait = 0
if blocked > now then
  wait = blocked - now
elseif window > 0 then
  local units = math.ceil(cost)
  local over = used + units - math.floor(capacity)
  if over > 0 and used > 0 then
    local entry = redis.call('ZRANGE', KEYS[2], math.min(over, used) - 1, math.min(over, used) - 1, 'WITHSCORES')
    wait = tonumber(entry[2]) + window - now
  else
    spend(units)
  end
elseif rate > 0 then
  local need = math.min(cost, capacity)
  if level < need then wait = (need - level) / rate else level = level - cost end
end
"""
    + _SAVE
    + "return tostring(wait) .. ' ' .. stamp\n"
)
_ANSWERED = (
    _STATE % ""
    + """
if window > 0 then
  local units = math.ceil(tonumber(ARGV[6]))
  local mine = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[7], ARGV[7], 'LIMIT', 0, units)
  if #mine > 0 then redis.call('ZREM', KEYS[2], unpack(mine)) end
  spend(units)
end
"""
    + _SAVE
)
_TELL = (
    _STATE
    % """
if ARGV[9] ~= '' then
  rate, capacity, window = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
  redis.call('HSET', KEYS[1], 'rate', ARGV[7], 'capacity', ARGV[8], 'window', ARGV[9])
end
"""
    + """
if ARGV[10] ~= '' and window > 0 then
  local missing = math.floor(capacity) - used - math.ceil(tonumber(ARGV[10]))
  if missing > 0 then spend(missing) end
elseif ARGV[10] ~= '' then
  level = math.min(level, tonumber(ARGV[10]))
end
local retry_after = tonumber(ARGV[6])
if retry_after > 0 then
  blocked = math.max(blocked, now + retry_after)
  level = math.min(level, 0)
end
"""
    + _SAVE
)


class RedisBuckets:
    """The budgets in Redis, shared by every worker process: each operation is one atomic Lua script.

    Redis unreachable, the budget fails open (no pacing, a warning): the provider's own Retry-After still
    holds each page back, and the page job itself cannot go on without its broker for long anyway."""

    PREFIX = "sxsync:quota:"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._take = client.register_script(_TAKE)
        self._answered = client.register_script(_ANSWERED)
        self._tell = client.register_script(_TELL)

    def _call(self, script: Callable[..., bytes], key: str, limit: Limit | None, *args: str) -> bytes:
        shape = [repr(limit.rate), repr(limit.capacity), repr(limit.window)] if limit else ["0", "0", "0"]
        keys = [self.PREFIX + key, self.PREFIX + key + ":log"]
        try:
            return script(keys=keys, args=[*shape, str(KEY_TTL_SECONDS), repr(UNKNOWN_LEVEL), *args])
        except redis.RedisError as exc:
            log.warning("rate budget unavailable, not pacing", extra={"error": type(exc).__name__})
            return b"0"

    def take(self, key: str, cost: float, limit: Limit | None) -> float:
        return self.take_stamped(key, cost, limit)[0]

    def take_stamped(self, key: str, cost: float, limit: Limit | None) -> tuple[float, str]:
        wait, _, stamp = self._call(self._take, key, limit, repr(float(cost))).decode().partition(" ")
        return float(wait), stamp

    def answered(self, key: str, cost: float, limit: Limit | None, stamp: str) -> None:
        self._call(self._answered, key, limit, repr(float(cost)), stamp)

    def tell(
        self, key: str, limit: Limit | None, *, retry_after: float, learned: Limit | None, remaining: float | None
    ) -> None:
        taught = [repr(learned.rate), repr(learned.capacity), repr(learned.window)] if learned else ["", "", ""]
        left = "" if remaining is None else repr(float(remaining))
        self._call(self._tell, key, limit, repr(float(retry_after)), *taught, left)


@dataclass
class AccountQuota:
    """The `connectors.base.Quota` of one (provider, account) for one page: what its connector spends and tells."""

    buckets: Buckets
    key: str
    limit: Limit | None
    pools: dict[str, Limit | None] = field(default_factory=dict)  # limits of requests a provider limits apart
    max_sleep: float = MAX_SLEEP_SECONDS  # before the page's first request
    max_sleep_started: float = MAX_SLEEP_SECONDS  # after it
    sleep: Callable[[float], None] = time.sleep
    started: bool = False
    stamps: dict[str, str] = field(default_factory=dict)  # per pool: where the last spend was logged

    def spend(self, cost: float, pool: str = "") -> None:
        """Wait for `cost` units (sleeping up to the page's bound); a longer wait is RateLimited for the queue.

        A pool's requests spend from the pool's own budget, and wait out the account's Retry-After too."""
        while True:
            wait, stamp = self.buckets.take_stamped(self.key, 0 if pool else cost, self.limit)
            if pool and wait <= 0:
                wait, stamp = self.buckets.take_stamped(f"{self.key}:{pool}", cost, self.pools.get(pool))
            if wait <= 0:
                self.started = True
                self.stamps[pool] = stamp
                return
            if wait > (self.max_sleep_started if self.started else self.max_sleep):
                raise RateLimited(f"{self.key}: the account's shared rate budget is spent for {wait:.1f} s", wait)
            self.sleep(wait)

    def answered(self, cost: float, pool: str = "") -> None:
        """The answer to the last spend of `cost` units came back: a rolling window counts them from now."""
        stamp = self.stamps.pop(pool, "")
        if not stamp:  # nothing logged (the budget was unreachable)
            return
        if pool:
            self.buckets.answered(f"{self.key}:{pool}", cost, self.pools.get(pool), stamp)
        else:
            self.buckets.answered(self.key, cost, self.limit, stamp)

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
                client = redis.Redis.from_url(
                    url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
                )
                _redis[url] = RedisBuckets(client)
            return _redis[url]
        key = id(rt)
        if key not in _local:
            _local[key] = LocalBuckets()
            weakref.finalize(rt, _local.pop, key, None)  # a test's runtime takes its buckets along
        return _local[key]


def quota_for(rt: Runtime, provider: str, account: str) -> AccountQuota:
    """The shared budget a page job hands its connector; long waits go back to the queue within a lease."""
    spec = rt.settings.rate_limits
    return AccountQuota(
        buckets_for(rt),
        f"{provider}:{account.strip().lower()}",
        configured_limit(spec, provider),
        {pool: configured_limit(spec, f"{provider}-{pool}") for pool in POOLS.get(provider, ())},
        max_sleep=min(MAX_SLEEP_SECONDS, rt.settings.lease_seconds * STARTED_SLEEP_SHARE),
        max_sleep_started=rt.settings.lease_seconds * STARTED_SLEEP_SHARE,
    )
