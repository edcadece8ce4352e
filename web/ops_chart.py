"""Throughput and errors over the last hours, as an inline SVG drawn on the server.

The store keeps running totals (records, pages, API calls per stream); their history is the
`ops_samples` table, so the chart survives restarts and every web process draws the same one. The
scheduler adds a point on each tick, and every dashboard view and `/metrics` scrape adds one too,
whenever the newest is at least `every` seconds old (a point per minute at most, by default). Rates
are the differences between consecutive points; a total that went down (a disconnect purged
streams) counts as zero, never negative. Points older than `keep` (a day) are deleted as new ones come.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.tables import OpsSample

WIDTH, HEIGHT, PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 720, 180, 48, 48, 16, 28


@dataclass(frozen=True)
class Sample:
    """The running totals at one instant."""

    at: datetime
    records: int
    pages: int
    api_calls: int
    failing: int  # streams failed or retrying
    dead_letters: int


@dataclass(frozen=True)
class Point:
    """Rates between two samples, per minute, and the error gauges at the later one."""

    at: datetime
    records_per_min: float
    pages_per_min: float
    failing: int
    dead_letters: int


class Sampler:
    """The chart's history in the store: at most one point per `every` seconds, kept for `keep`."""

    def __init__(
        self,
        writes: Callable[[], Session],
        reads: Callable[[], Session],
        every: float = 60.0,
        keep: timedelta = timedelta(hours=24),
    ) -> None:
        self.writes, self.reads = writes, reads
        self.every = every
        self.keep = keep

    def add(self, sample: Sample, *, force: bool = False) -> bool:
        """Store the sample if the newest is old enough (or forced); drop points older than `keep`."""
        at = sample.at
        try:
            with self.writes() as session, session.begin():
                newest = session.execute(select(func.max(OpsSample.at))).scalar_one_or_none()
                if not force and newest is not None and (at - newest).total_seconds() < self.every:
                    return False
                session.execute(delete(OpsSample).where(OpsSample.at < at - self.keep))
                totals = {"records": sample.records, "pages": sample.pages, "api_calls": sample.api_calls}
                gauges = {"failing": sample.failing, "dead_letters": sample.dead_letters}
                session.execute(insert(OpsSample), [{"at": at} | totals | gauges])
        except IntegrityError:
            return False  # another process stored a point for the same instant
        return True

    def samples(self, since: datetime | None = None) -> list[Sample]:
        """The history, oldest first (from `since` when given)."""
        query = select(OpsSample).order_by(OpsSample.at)
        if since is not None:
            query = query.where(OpsSample.at >= since)
        with self.reads() as session:
            return [
                Sample(r.at, r.records, r.pages, r.api_calls, r.failing, r.dead_letters)
                for r in session.execute(query).scalars()
            ]

    def points(self, since: datetime | None = None) -> list[Point]:
        """Per-minute rates between consecutive samples."""
        return rates(self.samples(since))


def rates(samples: list[Sample]) -> list[Point]:
    """Per-minute rates between consecutive samples (a total that went down counts as zero)."""
    points = []
    for before, after in itertools.pairwise(samples):
        minutes = max((after.at - before.at).total_seconds() / 60, 1e-6)
        points.append(
            Point(
                at=after.at,
                records_per_min=max(0, after.records - before.records) / minutes,
                pages_per_min=max(0, after.pages - before.pages) / minutes,
                failing=after.failing,
                dead_letters=after.dead_letters,
            )
        )
    return points


def _scale(values: list[float]) -> float:
    """A round upper bound for an axis (at least 1)."""
    top = max(values, default=0.0)
    if top <= 1:
        return 1.0
    magnitude = 10 ** (len(str(int(top))) - 1)
    for step in (1, 2, 5, 10):
        if top <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def render_svg(points: list[Point], now: datetime, hours: float = 6.0) -> str:
    """Records/min (left axis, blue) and failing streams + dead letters (right axis, red) over `hours`."""
    start = now - timedelta(hours=hours)
    shown = [p for p in points if p.at >= start]
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    left_top = _scale([p.records_per_min for p in shown])
    right_top = _scale([float(p.failing + p.dead_letters) for p in shown])

    def x(at: datetime) -> float:
        return PAD_LEFT + plot_w * (at - start).total_seconds() / (hours * 3600)

    def y(value: float, top: float) -> float:
        return PAD_TOP + plot_h * (1 - min(value, top) / top)

    def line(values: list[tuple[datetime, float]], top: float, css: str) -> str:
        if not values:
            return ""
        coords = " ".join(f"{x(at):.1f},{y(v, top):.1f}" for at, v in values)
        return f'<polyline class="{css}" fill="none" points="{coords}"/>'

    ticks = []
    for hour in range(int(hours) + 1):
        at = start + timedelta(hours=hour)
        ticks.append(
            f'<text x="{x(at):.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(at.strftime("%H:%M"))}</text>'
        )
    throughput = line([(p.at, p.records_per_min) for p in shown], left_top, "throughput")
    errors = line([(p.at, float(p.failing + p.dead_letters)) for p in shown], right_top, "errors")
    empty = (
        ""
        if shown
        else f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="muted">'
        "collecting samples: the scheduler adds a point every minute</text>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" '
        f'aria-label="records per minute and errors over the last {hours:g} hours">'
        f"<title>Throughput (records/min) and errors (failing streams + dead letters), last {hours:g} h</title>"
        f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>'
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + 10}" text-anchor="end" class="throughput-label">{left_top:g}</text>'
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + plot_h}" text-anchor="end">0</text>'
        f'<text x="{WIDTH - PAD_RIGHT + 6}" y="{PAD_TOP + 10}" class="errors-label">{right_top:g}</text>'
        f"{''.join(ticks)}{throughput}{errors}{empty}</svg>"
    )
