"""`GET /metrics`: the sync's health in Prometheus text format, computed at scrape time.

Gauges and counters come from the store (a handful of GROUP BY queries, no per-row work) and the
broker (O(1) calls per queue), so a scrape is cheap at 10,000 connections. Counters are the store's
running totals (records, pages and API calls per source) and the audit log's token events, counted
incrementally by id so a scrape reads only what is new. Dramatiq's own metrics (messages, errors,
retries, durations) are added from its Prometheus middleware's multiprocess files when workers on
this host run with that middleware.
"""

from __future__ import annotations

import glob
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import dramatiq
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from models.rls import system_wide
from models.tables import CONNECTION_STATUSES, AuditEvent, Connection, IdentityConflict, SyncState
from sync.runtime import Runtime
from sync.stalls import DEFAULT_RULE, StallRule, count_stalled
from web.ops_chart import Sample
from web.queues import QueueFigures, current_broker, queue_figures

__all__ = ["CONTENT_TYPE_LATEST", "StoreFigures", "TokenCounts", "render_metrics", "store_figures"]

TOKEN_ACTIONS = {"token.refresh": "refreshes", "token.refresh_failed": "failures"}


def dramatiq_prometheus_dir() -> str:
    """Where Dramatiq's Prometheus middleware keeps its multiprocess files (its own default)."""
    default = os.path.join(tempfile.gettempdir(), "dramatiq-prometheus")
    return os.getenv("dramatiq_prom_db", default)  # noqa: SIM112  (dramatiq's own lower-case name)


@dataclass
class TokenCounts:
    """Token refreshes and failures from the audit log, advanced by id so each scrape reads only new rows."""

    last_id: int = 0
    refreshes: int = 0
    failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, session: Session) -> None:
        """Count the token events written since the last call."""
        with self._lock:
            top = session.execute(select(func.max(AuditEvent.id))).scalar_one_or_none()
            if top is None or int(top) <= self.last_id:
                return
            rows = session.execute(
                select(AuditEvent.action, func.count())
                .where(AuditEvent.id > self.last_id, AuditEvent.id <= top, AuditEvent.action.in_(TOKEN_ACTIONS))
                .group_by(AuditEvent.action)
            ).all()
            for action, count in rows:
                if TOKEN_ACTIONS[action] == "refreshes":
                    self.refreshes += int(count)
                else:
                    self.failures += int(count)
            self.last_id = int(top)


@dataclass(frozen=True)
class StoreFigures:
    """What the store says, in a few aggregate queries."""

    connections: dict[str, int]  # by connection status
    by_source: dict[str, tuple[int, int, int, int]]  # source -> (records, api calls, pages, throttled)
    lag: dict[str, float]  # provider -> worst lag of an active connection's stream, seconds
    failing: int  # streams failed, or retrying after a failed page
    failed: int
    stalled: int
    conflicts: int

    @property
    def records(self) -> int:
        """All records synced."""
        return sum(r for r, _, _, _ in self.by_source.values())

    @property
    def pages(self) -> int:
        """All pages stored."""
        return sum(p for _, _, p, _ in self.by_source.values())

    @property
    def api_calls(self) -> int:
        """All provider API calls."""
        return sum(a for _, a, _, _ in self.by_source.values())


def store_figures(session: Session, now: datetime, rule: StallRule = DEFAULT_RULE) -> StoreFigures:
    """Connections by status, totals per source, worst lag per provider, failing/stalled streams."""
    connections = dict.fromkeys(CONNECTION_STATUSES, 0)
    for status, count in session.execute(select(Connection.status, func.count()).group_by(Connection.status)):
        connections[status] = int(count)
    by_source = {
        source: (int(records or 0), int(calls or 0), int(pages or 0), int(throttled or 0))
        for source, records, calls, pages, throttled in session.execute(
            select(
                Connection.source,
                func.sum(SyncState.records_total),
                func.sum(SyncState.api_calls_total),
                func.sum(SyncState.pages_total),
                func.sum(SyncState.throttled_total),
            )
            .join(Connection, Connection.id == SyncState.connection_id)
            .group_by(Connection.source)
        )
    }
    lag: dict[str, float] = {}
    for provider, oldest in session.execute(
        select(Connection.provider, func.min(func.coalesce(SyncState.last_success_at, Connection.created_at)))
        .join(Connection, Connection.id == SyncState.connection_id)
        .where(Connection.status == "active")
        .group_by(Connection.provider)
    ):
        if oldest is not None:
            lag[provider] = max(0.0, (now - _aware(oldest)).total_seconds())
    failing, failed = session.execute(
        select(
            func.count().filter(or_(SyncState.failed.is_(True), SyncState.attempts > 0)),
            func.count().filter(SyncState.failed.is_(True)),
        )
        .select_from(SyncState)
        .join(Connection, Connection.id == SyncState.connection_id)
        .where(Connection.status == "active")
    ).one()
    return StoreFigures(
        connections=connections,
        by_source=by_source,
        lag=lag,
        failing=int(failing),
        failed=int(failed),
        stalled=count_stalled(session, now, rule),
        conflicts=int(session.execute(select(func.count()).select_from(IdentityConflict)).scalar_one()),
    )


def _aware(value: datetime | str) -> datetime:
    """SQLite may hand an aggregate's timestamp back as text; both come back tz-aware UTC."""
    from models.tables import UTCDateTime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    result = UTCDateTime().process_result_value(value, None)  # type: ignore[arg-type]
    assert result is not None
    return result


class _Families(Collector):
    """A one-shot collector over figures computed for this scrape."""

    def __init__(self, store: StoreFigures, queues: list[QueueFigures], tokens: TokenCounts) -> None:
        self.store, self.queues, self.tokens = store, queues, tokens

    def collect(self) -> Iterator[Metric]:
        """Every sxsync_* family."""
        depth = GaugeMetricFamily(
            "sxsync_queue_depth", "Messages waiting in a queue (QUEUE.DQ: delayed).", labels=["queue"]
        )
        in_flight = GaugeMetricFamily(
            "sxsync_queue_in_flight", "Messages fetched by a worker, not yet acked.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "sxsync_queue_oldest_message_age_seconds", "Age of the oldest ready message.", labels=["queue"]
        )
        dead = GaugeMetricFamily("sxsync_dead_letters", "Dead-lettered messages (kept 7 days).", labels=["queue"])
        for q in self.queues:
            depth.add_metric([q.queue], q.ready)
            depth.add_metric([f"{q.queue}.DQ"], q.delayed)
            dead.add_metric([q.queue], q.dead)
            if q.in_flight is not None:
                in_flight.add_metric([q.queue], q.in_flight)
            oldest.add_metric([q.queue], q.oldest_age_seconds or 0.0)
        yield from (depth, in_flight, oldest, dead)

        connections = GaugeMetricFamily("sxsync_connections", "Connections by status.", labels=["status"])
        for status, count in sorted(self.store.connections.items()):
            connections.add_metric([status], count)
        yield connections

        lag = GaugeMetricFamily(
            "sxsync_lag_seconds",
            "Worst lag of an active connection's stream: now minus its last caught-up checkpoint.",
            labels=["provider"],
        )
        for provider, seconds in sorted(self.store.lag.items()):
            lag.add_metric([provider], round(seconds, 3))
        yield lag

        records = CounterMetricFamily(
            "sxsync_records_synced", "Records stored (new, changed, deleted).", labels=["source"]
        )
        calls = CounterMetricFamily("sxsync_api_calls", "Provider API calls.", labels=["source"])
        pages = CounterMetricFamily("sxsync_pages_synced", "Pages stored.", labels=["source"])
        throttled = CounterMetricFamily(
            "sxsync_api_throttled",
            "Provider rate-limit answers (429, 403 limit, 503) that made a page wait.",
            labels=["source"],
        )
        for source, (r, a, p, t) in sorted(self.store.by_source.items()):
            records.add_metric([source], r)
            calls.add_metric([source], a)
            pages.add_metric([source], p)
            throttled.add_metric([source], t)
        yield from (records, calls, pages, throttled)

        yield CounterMetricFamily("sxsync_token_refreshes", "Access-token refreshes.", value=self.tokens.refreshes)
        yield CounterMetricFamily(
            "sxsync_token_refresh_failures", "Access-token refreshes that failed.", value=self.tokens.failures
        )
        yield GaugeMetricFamily(
            "sxsync_streams_stalled", "Streams whose checkpoint stopped advancing.", value=self.store.stalled
        )
        yield GaugeMetricFamily(
            "sxsync_streams_failed", "Streams failed after their last retry.", value=self.store.failed
        )
        yield GaugeMetricFamily(
            "sxsync_streams_failing", "Streams failed or retrying after a failed page.", value=self.store.failing
        )
        yield GaugeMetricFamily(
            "sxsync_identity_conflicts", "Identity keys shared by too many records to tie.", value=self.store.conflicts
        )


@system_wide
def render_metrics(
    rt: Runtime,
    tokens: TokenCounts,
    broker: dramatiq.Broker | None = None,
    *,
    now: datetime | None = None,
    include_dramatiq: bool = True,
) -> tuple[bytes, StoreFigures, list[QueueFigures]]:
    """The exposition text, and the figures behind it (the dashboard's chart samples them)."""
    now = now or rt.clock()
    with rt.sessions() as session:
        store = store_figures(session, now)
        tokens.update(session)
    queues = queue_figures(broker if broker is not None else current_broker())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(store, queues, tokens))
    if include_dramatiq:
        _add_dramatiq(registry)
    return generate_latest(registry), store, queues


def _add_dramatiq(registry: CollectorRegistry) -> None:
    """Dramatiq's middleware metrics, when workers on this host write them."""
    path = dramatiq_prometheus_dir()
    if not glob.glob(os.path.join(path, "*.db")):
        return
    from prometheus_client import multiprocess

    multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]


@system_wide
def current_sample(rt: Runtime, broker: dramatiq.Broker | None) -> Sample:
    """The chart's figures now: store totals and failing streams, and the broker's dead letters."""
    now = rt.clock()
    with rt.sessions() as session:
        store = store_figures(session, now)
    dead = sum(q.dead for q in queue_figures(broker))
    return Sample(now, store.records, store.pages, store.api_calls, store.failing, dead)
