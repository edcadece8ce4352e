"""R5: the worker's Redis, PostgreSQL and provider traffic through a fault proxy: latency, resets, a blackhole.

The worker process reaches the private Redis, the private PostgreSQL cluster and the emulator only
through tests/faults/proxy.py (the test process and the scheduler go direct, so the test can watch).
Mid-sync the proxies add latency, then reset every connection, then blackhole everything for
BLACKHOLE_SECONDS, longer than any timeout the product sets:

- Redis: the broker client's socket timeout (sync/broker.py's REDIS_TIMEOUT, 5 s; redis-py before 8.0,
  which `redis>=5` allows, had none and waited forever);
- PostgreSQL: `connect_timeout` (models/db.py's PG_CONNECT_ARGS; a read on an established connection
  has no client-side bound but TCP's: keepalives and `tcp_user_timeout`, which a userspace proxy
  that acknowledges every byte cannot trigger, so those reads wait out the blackhole);
- the providers' HTTP clients and the token endpoint: `http_timeout`.

During the blackhole one probe per client (the product's own: the broker's Redis client, a new
engine connection, a Gmail page fetch) calls through the proxy: each must end with its own timeout,
not be freed by the proxy's reset when the blackhole ends (that would be a hang). The sync completes
with 0 lost, 0 doubled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dramatiq.brokers.redis import RedisBroker
from redis.connection import Connection
from redis.exceptions import TimeoutError as RedisTimeout

from connectors.base import Endpoints, FetchContext
from connectors.registry import get_connector
from models.db import PG_CONNECT_ARGS, make_engine
from models.settings import Settings
from sync.broker import REDIS_TIMEOUT, make_broker
from sync.inprocess import Progress
from sync.scheduler import start_all
from tests.faults.conftest import LEASE_SECONDS, LONG, MEMBERS, Scenario, seed, world
from tests.faults.harness import Keys, Supervisor, compare, natural_keys
from tests.faults.outages import Driver, Scheduler
from tests.faults.proxy import FaultProxy
from tests.faults.services import PostgresCluster, RedisServer
from web.stack import Stack, running_stack

pytestmark = pytest.mark.faults
SYNCED = MEMBERS if LONG else MEMBERS[:2]  # CI budget: two mailboxes are chains enough to fault
PAGE_SIZE = 10
HTTP_TIMEOUT = 5.0
BLACKHOLE_SECONDS = 12.5  # longer than every timeout above (PostgreSQL's connect_timeout is the longest, 10 s)
LATENCY = 0.05  # seconds per forwarded chunk, each way
LATENCY_SECONDS = 2.0
FAULT_AT = 3  # pages stored before the first round
ROUNDS = 3 if LONG else 1


class Probe:
    """One call through a blackholed proxy on a thread: how long it took and whether its own timeout ended it."""

    def __init__(self, name: str, bound: float, call: Callable[[], object], timed_out: Callable[[Exception], bool]):
        self.name, self.bound = name, bound
        self.seconds: float | None = None
        self.outcome = "running"
        self._call, self._timed_out = call, timed_out
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self._call()
            self.outcome = "answered"  # through a blackhole: impossible
        except Exception as exc:  # the probe classifies whatever the client raised
            self.outcome = "own timeout" if self._timed_out(exc) else f"{type(exc).__name__}: {exc}"[:200]
        self.seconds = time.monotonic() - started


def _probes(settings: Settings, stack: Stack) -> list[Probe]:
    """The product's own clients, each pointed at its blackholed proxy."""
    broker = make_broker(settings.broker_url, settings)
    assert isinstance(broker, RedisBroker)
    connection = broker.client.connection_pool.make_connection()  # not connected: its settings only
    assert isinstance(connection, Connection)
    assert connection.socket_timeout == REDIS_TIMEOUT, "the broker must not rely on redis-py's default"
    engine = make_engine(settings.database_url)
    account = SYNCED[0]
    context = FetchContext(
        access_token="probe",
        endpoints=Endpoints(settings.google_api_url, settings.ca_bundle or None, HTTP_TIMEOUT),
        account=account,
        now=stack.rt.clock(),
        page_size=PAGE_SIZE,
    )
    return [
        Probe("redis", REDIS_TIMEOUT, broker.client.ping, lambda e: isinstance(e, RedisTimeout)),
        Probe(
            "postgresql_connect",
            float(PG_CONNECT_ARGS["connect_timeout"]),
            lambda: engine.connect().close(),
            lambda e: "timeout expired" in str(e),
        ),
        Probe(
            "provider_http",
            HTTP_TIMEOUT,
            lambda: get_connector("gmail").fetch_page("messages", None, context),
            lambda e: "timed out" in str(e),
        ),
    ]


def test_latency_resets_and_a_blackhole_hang_no_call_and_lose_nothing(
    tmp_path: Path,
    reference: dict[tuple[str, ...], Keys],
    scenario: Scenario,
) -> None:
    scenario.name = f"R5 proxy latency + resets + {BLACKHOLE_SECONDS:.0f} s blackhole x{ROUNDS} (Redis, PG, emulator)"
    started = time.monotonic()
    with (
        PostgresCluster() as cluster,
        RedisServer(tmp_path / "redis") as server,
        FaultProxy("127.0.0.1", server.port) as redis_proxy,
        FaultProxy("127.0.0.1", cluster.port) as pg_proxy,
        running_stack(
            data_dir=tmp_path / "run", world=world(), database_url=cluster.url(), broker_url=server.url(),
            workers=0, page_size=PAGE_SIZE, lease_seconds=LEASE_SECONDS, http_timeout=HTTP_TIMEOUT,
        ) as stack,
        FaultProxy("127.0.0.1", stack.sandbox.port) as api_proxy,
    ):
        seed(stack, SYNCED)
        proxies = (redis_proxy, pg_proxy, api_proxy)
        settings = _through(stack, redis_proxy, pg_proxy, api_proxy)
        probes: list[Probe] = []
        with (
            Supervisor(settings, tmp_path / "worker.log") as worker,
            Scheduler(stack, tmp_path / "scheduler.log", float(LEASE_SECONDS)) as scheduler,
        ):
            start_all(stack.rt)
            driver = Driver(worker, stack)
            step = _rounds(proxies, lambda: _probes(settings, stack), probes)
            final = driver.run(timeout=300 if LONG else 150, step=step)
            scheduler_alive = scheduler.alive
        stored = natural_keys(stack)
        with stack.rt.engine.connect() as conn:  # an established connection: bounded by TCP's timeouts only
            parameters = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    diff = compare(reference[SYNCED], stored)
    hung = [p for p in probes if p.outcome != "own timeout"]
    scenario.figures |= {
        "rounds": len(probes) // 3,
        "connections_reset": sum(p.counts["reset"] for p in proxies),
        "connections_blackholed": sum(p.counts["blackholed"] for p in proxies),
        "probes_hung": len(hung),
        **{f"{p.name}_s/timeout": round((p.seconds or 0) / p.bound, 2) for p in probes[:3]},
        "worker_deaths": worker.deaths,
        "pages": final.pages,
        "expected": diff.expected,
        "lost": diff.lost,
        "doubled": diff.doubled,
        "unexpected": diff.unexpected,
        "failed": final.failed,
        "seconds": round(time.monotonic() - started, 1),
    }
    assert {k: parameters.get(k) for k in PG_CONNECT_ARGS} == {k: str(v) for k, v in PG_CONNECT_ARGS.items()}
    assert len(probes) == 3 * ROUNDS, "the sync ended before every fault round ran"
    assert not hung, [(p.name, p.outcome, p.seconds) for p in hung]
    assert scheduler_alive
    assert final.failed == 0
    assert diff.clean, diff.examples


def _through(stack: Stack, redis_proxy: FaultProxy, pg_proxy: FaultProxy, api_proxy: FaultProxy) -> Settings:
    """The worker's settings: broker, store and every provider URL through their proxies."""
    settings = stack.rt.settings
    sandbox_at, proxy_at = f"127.0.0.1:{stack.sandbox.port}", f"127.0.0.1:{api_proxy.port}"
    update: dict[str, object] = {
        name: value.replace(sandbox_at, proxy_at)
        for name, value in settings.model_dump().items()
        if isinstance(value, str) and sandbox_at in value
    }
    update["broker_url"] = settings.broker_url.replace(f":{_port(settings.broker_url)}/", f":{redis_proxy.port}/")
    update["database_url"] = settings.database_url.replace(
        f":{_port(settings.database_url)}/", f":{pg_proxy.port}/"
    )
    return settings.model_copy(update=update)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _rounds(
    proxies: tuple[FaultProxy, ...], make_probes: Callable[[], list[Probe]], probes: list[Probe]
) -> Callable[[Progress], None]:
    """Each FAULT_AT pages: latency, one reset of every connection, then a blackhole with the probes inside it."""
    done = 0

    def step(state: Progress) -> None:
        nonlocal done
        if done >= ROUNDS or state.pages < FAULT_AT * (done + 1):
            return
        done += 1
        for proxy in proxies:
            proxy.set("latency", LATENCY)
        time.sleep(LATENCY_SECONDS)
        for proxy in proxies:
            proxy.set("reset")
            proxy.set("blackhole")
        fresh = make_probes()
        for probe in fresh:
            probe.thread.start()
        time.sleep(BLACKHOLE_SECONDS)
        for proxy in proxies:
            proxy.set("pass")
        for probe in fresh:
            probe.thread.join(timeout=30)
        probes.extend(fresh)

    return step
