"""The shared rate budget (sync/ratelimit.py) on both backends: in-process, and Redis across processes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
import redis

from connectors.base import RateLimited
from sync.ratelimit import (
    DOCUMENTED,
    AccountQuota,
    Buckets,
    Limit,
    LocalBuckets,
    RedisBuckets,
    configured_limit,
    per_second,
    rolling,
)
from tests.conftest import redis_database

KEY = "google:alice@acme.test"
NO_REFILL = 1e-9  # units per second: nothing comes back during a test


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from redis_database(8)


@pytest.fixture(params=["local", "redis"])
def pair(request: pytest.FixtureRequest) -> tuple[Buckets, Buckets]:
    """Two workers' views of the buckets: the same object in-process, two Redis clients otherwise."""
    if request.param == "local":
        shared = LocalBuckets()
        return shared, shared
    url = str(request.getfixturevalue("redis_url"))
    return RedisBuckets(redis.Redis.from_url(url)), RedisBuckets(redis.Redis.from_url(url))


def test_a_bucket_grants_its_capacity_then_asks_to_wait(pair: tuple[Buckets, Buckets]) -> None:
    one, other = pair
    limit = Limit(NO_REFILL, 10)
    granted = [one.take(KEY, 1, limit) == 0 for _ in range(6)] + [other.take(KEY, 1, limit) == 0 for _ in range(6)]
    assert granted.count(True) == 10 and granted[-2:] == [False, False]


def test_a_request_dearer_than_the_bucket_goes_when_it_is_full_and_leaves_a_debt(pair: tuple[Buckets, Buckets]) -> None:
    one, other = pair
    limit = Limit(1.0, 10)
    assert one.take(KEY, 25, limit) == 0  # a Gmail batch of 100 gets (500 units) on a smaller bucket
    assert other.take(KEY, 1, limit) > 10  # the debt of 15 units is paid back at 1 unit/s first


def test_a_retry_after_heard_by_one_worker_blocks_the_account_for_every_worker(pair: tuple[Buckets, Buckets]) -> None:
    one, other = pair
    limit = Limit(1000.0, 1000)
    one.tell(KEY, limit, retry_after=30, learned=None, remaining=None)
    assert 20 < other.take(KEY, 1, limit) <= 30
    assert other.take("google:bob@acme.test", 1, limit) == 0  # another account is not throttled


def test_a_window_an_answer_announces_replaces_the_default_for_every_worker(pair: tuple[Buckets, Buckets]) -> None:
    one, other = pair
    default = Limit(NO_REFILL, 1000)
    one.tell(KEY, default, retry_after=0, learned=Limit(NO_REFILL, 5), remaining=2)
    granted = [other.take(KEY, 1, default) == 0 for _ in range(4)]
    assert granted == [True, True, False, False]  # what the provider said was left, not the default's 1000


def test_an_unknown_limit_paces_nothing_until_an_answer_teaches_one(pair: tuple[Buckets, Buckets]) -> None:
    one, other = pair
    assert all(one.take(KEY, 1, None) == 0 for _ in range(200))
    one.tell(KEY, None, retry_after=0, learned=rolling(100_000, 86_400), remaining=3)
    granted = [other.take(KEY, 1, None) == 0 for _ in range(5)]
    assert granted == [True, True, True, False, False]


def _spend_all(url: str, tries: int) -> int:
    """One worker process: how many single units it got from a bucket of 60 that does not refill."""
    buckets = RedisBuckets(redis.Redis.from_url(url))
    return sum(buckets.take(KEY, 1, Limit(NO_REFILL, 60)) == 0 for _ in range(tries))


def test_worker_processes_together_never_spend_more_than_the_bucket_holds(redis_url: str) -> None:
    with ProcessPoolExecutor(4) as pool:
        granted = list(pool.map(_spend_all, [redis_url] * 4, [40] * 4))
    assert sum(granted) == 60 and len([g for g in granted if g]) >= 2


def test_a_short_wait_is_slept_in_place_and_a_long_one_goes_back_to_the_queue() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # a clock that the sleeps move, so nothing waits for real
        slept.append(seconds)
        now[0] += seconds

    quota = AccountQuota(LocalBuckets(clock=lambda: now[0]), KEY, Limit(100.0, 100), max_sleep=2.0, sleep=sleep)
    quota.tell(retry_after=1.0)
    quota.spend(1)  # waits out the Retry-After in place (the bucket refilled meanwhile), then spends
    assert slept == [1.0]
    quota.tell(retry_after=30.0)
    with pytest.raises(RateLimited) as raised:
        quota.spend(1)
    assert raised.value.retry_after == 30.0 and slept == [1.0]


def test_a_page_that_has_spent_waits_longer_in_place_than_one_that_has_not() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    buckets = LocalBuckets(clock=lambda: now[0])
    started = AccountQuota(buckets, KEY, rolling(2, 10), max_sleep=1.0, max_sleep_started=20.0, sleep=sleep)
    started.spend(1)
    started.spend(1)  # the window is full for the next 10 s
    fresh = AccountQuota(buckets, KEY, rolling(2, 10), max_sleep=1.0, max_sleep_started=20.0, sleep=sleep)
    with pytest.raises(RateLimited):  # a page that has spent nothing goes back to the queue ...
        fresh.spend(1)
    started.spend(1)  # ... one that has spent waits in place: requeued, its calls would be spent again
    assert len(slept) == 1 and slept[0] > 9


def test_a_rolling_window_grants_its_calls_then_waits_for_the_oldest_to_leave_it(pair: tuple[Buckets, Buckets]) -> None:
    one, other = pair
    limit = rolling(5, 60)
    granted = [one.take(KEY, 1, limit) == 0 for _ in range(3)] + [other.take(KEY, 1, limit) == 0 for _ in range(3)]
    assert granted == [True] * 5 + [False]
    assert 55 < other.take(KEY, 1, limit) <= 60 * 1.02  # the first call leaves the window (and our slack)


def test_an_answered_spend_counts_from_its_answer_in_a_rolling_window() -> None:
    now = [0.0]
    quota = AccountQuota(LocalBuckets(clock=lambda: now[0]), KEY, None, {"search": rolling(2, 1)})
    quota.spend(1, "search")  # logged at 0 ...
    now[0] = 0.4
    quota.answered(1, "search")  # ... answered at 0.4: the provider may have counted it as late as that
    window = rolling(2, 1).window
    assert quota.buckets.take(f"{KEY}:search", 1, rolling(2, 1)) == 0  # one of two in the window
    assert quota.buckets.take(f"{KEY}:search", 1, rolling(2, 1)) == pytest.approx(window)  # 0.4 + window


def test_an_answered_spend_leaves_its_place_in_the_shared_log(redis_url: str) -> None:
    limit = rolling(2, 60)
    buckets = RedisBuckets(redis.Redis.from_url(redis_url))
    quota = AccountQuota(buckets, KEY, limit)
    quota.spend(1)
    quota.answered(1)  # its entry moves to now rather than being counted twice
    assert buckets.take(KEY, 1, limit) == 0
    assert 59 < buckets.take(KEY, 1, limit) <= limit.window


def test_calls_a_window_announces_as_spent_elsewhere_count_as_spent(pair: tuple[Buckets, Buckets]) -> None:
    one, other = pair
    one.tell(KEY, None, retry_after=0, learned=rolling(5, 60), remaining=2)  # 3 spent by someone else
    granted = [other.take(KEY, 1, None) == 0 for _ in range(4)]
    assert granted == [True, True, False, False]


def test_the_documented_limits_are_the_defaults_and_the_setting_overrides_them() -> None:
    assert configured_limit("", "google") == per_second(250) == DOCUMENTED["google"]
    assert configured_limit("", "salesforce") is None
    assert configured_limit("hubspot=190/10, google=off", "hubspot") == rolling(190, 10) == Limit(19.0, 190, 10.2)
    assert configured_limit("hubspot=190/10, google=off", "google") is None
    assert configured_limit("google=500/2", "google") == per_second(250)
    with pytest.raises(ValueError, match="RATE_LIMITS"):
        configured_limit("google=fast", "google")


def test_a_days_allowance_is_a_bucket_of_the_whole_allowance_not_a_log() -> None:
    assert rolling(100_000, 86_400) == Limit(100_000 / 86_400, 100_000)


def test_a_pool_has_its_own_budget_and_still_waits_out_the_accounts_retry_after() -> None:
    search = rolling(2, 60)
    quota = AccountQuota(LocalBuckets(), "hubspot:alice@acme.test", rolling(100, 10), {"search": search})
    quota.spend(1, "search")
    quota.spend(1, "search")
    with pytest.raises(RateLimited):  # the searches' own window is full ...
        quota.spend(1, "search")
    quota.spend(1)  # ... the account's other requests are not
    quota.tell(retry_after=30)
    with pytest.raises(RateLimited) as raised:
        AccountQuota(quota.buckets, quota.key, quota.limit, {"search": rolling(100, 1)}).spend(1, "search")
    assert raised.value.retry_after > 20


def test_an_unreachable_redis_paces_nothing_rather_than_failing_the_page() -> None:
    down = RedisBuckets(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5))
    down.tell(KEY, None, retry_after=30, learned=None, remaining=None)
    assert down.take(KEY, 1, Limit(NO_REFILL, 1)) == 0
