"""Stall rule (SQL and Python agree), error redaction, and the chart's rates and SVG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from models.tables import Connection, SyncState
from sync.stalls import StallRule, count_stalled, find_stalled, stall_reason
from tests.ops_ui.conftest import DOMAIN, MEMBERS, ORG, connection_id, set_state, small_world
from web.metrics import current_sample
from web.ops_chart import Sample, Sampler, render_svg
from web.ops_report import redact_error
from web.stack import running_stack


def test_the_stall_rule_is_the_same_in_sql_and_python(tmp_path: Path, store_url: str) -> None:
    with running_stack(data_dir=tmp_path, world=small_world(size=60), database_url=store_url, workers=0) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        stack.connect(ORG, MEMBERS[0])
        stack.connect(ORG, MEMBERS[1])
        now = stack.rt.clock()
        a_mail = connection_id(stack, MEMBERS[0], "gmail")
        a_cal = connection_id(stack, MEMBERS[0], "google_calendar")
        b_mail = connection_id(stack, MEMBERS[1], "gmail")
        b_cal = connection_id(stack, MEMBERS[1], "google_calendar")
        fresh = now - timedelta(minutes=1)
        for cid, stream in ((a_mail, "messages"), (a_cal, "events"), (b_mail, "messages"), (b_cal, "events")):
            set_state(stack, cid, stream, running=False, failed=False, attempts=0, last_progress_at=fresh)
        set_state(stack, a_mail, "messages", running=True, attempts=3)  # 3 tries without a stored page
        set_state(stack, a_cal, "events", running=True, last_progress_at=now - timedelta(minutes=31))
        set_state(stack, b_mail, "messages", running=True, failed=True, attempts=6)  # failed, not stalled
        set_state(stack, b_cal, "events", running=True, attempts=2, last_progress_at=now - timedelta(minutes=29))
        rule = StallRule(attempts=3, minutes=30)
        with stack.rt.sessions() as session:
            found = find_stalled(session, now, rule)
            assert {(s.connection_id, s.stream) for s in found} == {(a_mail, "messages"), (a_cal, "events")}
            assert count_stalled(session, now, rule) == 2
            reasons = {s.connection_id: s.reason for s in found}
            assert reasons[a_mail] == "3 attempts without storing a page"
            assert reasons[a_cal] == "no page stored for 31 min"
            rows = session.execute(
                select(SyncState, Connection.status).join(Connection, Connection.id == SyncState.connection_id)
            ).all()
            python = {(s.connection_id, s.stream) for s, status in rows if stall_reason(s, status, now, rule)}
            assert python == {(s.connection_id, s.stream) for s in found}


def test_last_errors_lose_tokens_and_payloads() -> None:
    raw = 'history: HTTP 500: boom {"error": {"access_token": "ya29.SECRET"}} Bearer abc.def'
    assert redact_error(raw) == "history: HTTP 500: boom […]"
    assert "ya29" not in (redact_error("refresh failed with ya29.AAAAbbbb and 1//0gXYZ") or "")
    assert redact_error(None) is None
    assert len(redact_error("x" * 1000) or "") == 160


def test_chart_points_are_stored_rates_never_go_negative_and_render_as_svg(tmp_path: Path, store_url: str) -> None:
    with running_stack(data_dir=tmp_path, world=small_world(size=60), database_url=store_url, workers=0) as stack:
        rt = stack.rt
        sampler = Sampler(rt.writes, rt.sessions, every=30, keep=timedelta(hours=1))
        t0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
        assert sampler.add(Sample(t0 - timedelta(hours=2), 0, 0, 0, 0, 0))
        assert sampler.add(Sample(t0, 0, 0, 0, 0, 0))  # and the point older than `keep` is gone
        assert not sampler.add(Sample(t0 + timedelta(seconds=10), 5, 1, 1, 0, 0))  # too soon
        sampler.add(Sample(t0 + timedelta(minutes=1), 600, 6, 12, 1, 0))
        sampler.add(Sample(t0 + timedelta(minutes=2), 500, 6, 12, 2, 1))  # a purge lowered the total
        restarted = Sampler(rt.writes, rt.sessions)  # a new web process (or the scheduler) sees the same history
        points = restarted.points()
        assert [round(p.records_per_min) for p in points] == [600, 0]
        assert [(p.failing, p.dead_letters) for p in points] == [(1, 0), (2, 1)]
        assert [p.at for p in restarted.points(since=t0 + timedelta(minutes=2))] == []  # one sample: no rate yet
        svg = render_svg(points, t0 + timedelta(minutes=3))
        assert svg.startswith("<svg") and svg.count("<polyline") == 2 and "records per minute" in svg
        assert "collecting samples" in render_svg([], t0)
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        stack.connect(ORG, MEMBERS[0])
        now = current_sample(rt, stack.broker)
        assert now.records == 0 and now.dead_letters == 0 and now.failing == 0
        assert restarted.add(now) and restarted.samples()[-1] == now
