"""The `sxsync scheduler` loop: due syncs, stalled chains, daily strength decay, retention sweeps, chart points."""

from __future__ import annotations

import logging
import time

from privacy.disconnect import purge_due_disconnects
from privacy.retention import sweep_retention
from sync.broker import broker_was_emptied
from sync.decay import decay_due
from sync.runtime import Runtime
from sync.scheduler import resend_running, tick
from web.metrics import current_sample
from web.ops_chart import Sampler
from web.queues import current_broker

log = logging.getLogger("sxsync.scheduler")
RETENTION_EVERY = 3600.0  # seconds; the sweep is idempotent, so running it hourly keeps the one-year promise


def run_forever(rt: Runtime, period: float) -> None:
    """Tick every `period` seconds; decay and retention when due; a chart point at most once a minute."""
    last_retention = float("-inf")
    sampler = Sampler(rt.writes, rt.sessions)
    while True:
        try:
            last_retention = _one_tick(rt, sampler, last_retention)
        except Exception:  # a store or broker outage: the next tick tries again (the reconciler needs us alive)
            log.exception("scheduler tick failed")
        time.sleep(period)


def _one_tick(rt: Runtime, sampler: Sampler, last_retention: float) -> float:
    """Due syncs and stalled chains, a chart point, decay, retention when due; returns when retention last ran."""
    broker = current_broker()
    resent = resend_running(rt, rt.clock()) if broker_was_emptied(broker) else 0
    started, stalled = tick(rt)
    resent += stalled
    sampler.add(current_sample(rt, broker))
    decayed = decay_due(rt, rt.clock())
    swept = 0
    if time.monotonic() - last_retention >= RETENTION_EVERY:
        swept = len(sweep_retention(rt)) + len(purge_due_disconnects(rt))
        last_retention = time.monotonic()
    if started or resent or decayed or swept:
        log.info(
            "scheduler tick",
            extra={"started": started, "resent": resent, "orgs_decayed": decayed, "swept": swept},
        )
    return last_retention
