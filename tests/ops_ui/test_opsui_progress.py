"""Checkpoint progress as ops see it: loops that report success, throttled pages, backfill percent."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import sync.pipeline
from connectors.base import JSON, FetchContext, Page
from models.tables import SyncState
from sync.logs import configure_logging
from sync.pipeline import run_page
from sync.stalls import find_stalled
from tests.ops_ui.conftest import ADMIN_KEY, DOMAIN, MEMBERS, ORG, connection_id, small_world
from tests.ops_ui.test_opsui_metrics import scrape
from web.ops_report import connection_views, load_streams
from web.stack import Stack, running_stack

GMAIL_ONLY = {"sources": ["gmail"]}


def _state(stack: Stack, connection: int) -> SyncState:
    with stack.rt.sessions() as session:
        state = session.query(SyncState).filter_by(connection_id=connection, stream="messages").one()
        session.expunge(state)
        return state


def _step(stack: Stack, connection: int) -> str:
    """Run the stream's current page job once, as a worker would."""
    return run_page(stack.rt, connection, "messages", _state(stack, connection).version).status


def _looping(cursor_of: dict[str, JSON | None]) -> SimpleNamespace:
    """A source whose every page reads nothing and hands back the cursor it was given, never done."""

    def fetch_page(stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
        cursor_of["last"] = cursor
        return Page([], [], cursor or {"phase": "full"}, done=False, api_calls=1)

    return SimpleNamespace(name="gmail", fetch_page=fetch_page)


@pytest.fixture
def one_mailbox(tmp_path: Path, sqlite_url: str) -> Any:
    with running_stack(
        data_dir=tmp_path,
        world=small_world(size=300),
        database_url=sqlite_url,
        workers=0,
        page_size=10,
        read_ahead_pages=1,  # one page a job: the tests follow the progress page by page
        tls=False,
        admin_key=ADMIN_KEY,
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
        stack.connect(ORG, MEMBERS[0])
        yield stack, connection_id(stack, MEMBERS[0], "gmail")


def test_a_stream_that_loops_while_reporting_success_is_flagged_stalled(
    one_mailbox: tuple[Stack, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, mail = one_mailbox
    assert _step(stack, mail) == "committed"  # a real first page: progress
    assert _state(stack, mail).idle_pages == 0
    seen: dict[str, JSON | None] = {}
    monkeypatch.setattr(sync.pipeline, "get_connector", lambda source: _looping(seen))
    for n in range(1, 6):
        assert _step(stack, mail) == "committed"  # every job "succeeds"...
        assert _state(stack, mail).idle_pages == n  # ...without moving the checkpoint
    now = stack.rt.clock()
    with stack.rt.sessions() as session:
        (stall,) = find_stalled(session, now)
        views = connection_views(load_streams(session, ORG), now)
    assert (stall.connection_id, stall.reason) == (mail, "looping: 5 pages stored without advancing the checkpoint")
    (view,) = [v for v in views if v.id == mail]
    assert view.status == "stalled" and view.stall_reason == stall.reason
    monkeypatch.undo()
    assert _step(stack, mail) in ("committed", "done")  # the real source moves again
    assert _state(stack, mail).idle_pages == 0


def test_backfill_percent_grows_with_the_window_read_and_is_100_when_done(one_mailbox: tuple[Stack, int]) -> None:
    stack, mail = one_mailbox
    percents = []
    while True:
        status = _step(stack, mail)
        with stack.rt.sessions() as session:
            (view,) = [v for v in connection_views(load_streams(session, ORG), stack.rt.clock()) if v.id == mail]
        percents.append(view.backfill_percent)
        if status == "done":
            break
        assert status == "committed"
    assert len(percents) >= 3, "the small world still takes several pages of 10"
    assert all(p is not None and 0 < p < 100 for p in percents[:-1]), percents
    assert percents[:-1] == sorted(percents[:-1]), "newest first: the window read only grows"
    assert percents[-1] == 100


def test_throttled_pages_are_counted_per_source_in_metrics_and_on_the_dashboard(
    one_mailbox: tuple[Stack, int],
) -> None:
    stack, mail = one_mailbox
    faults = stack.sandbox.google.faults
    faults.fail_randomly(1.0, "429", retry_after=1, scope="request")
    assert _step(stack, mail) == "rate_limited"  # the whole call refused: the page waits for Retry-After
    faults.clear()
    assert _state(stack, mail).throttled_total == 1
    time.sleep(2.0)  # past the held lease (Retry-After plus jitter)
    faults.fail_randomly(1.0, "429", retry_after=1, scope="part", endpoints=("get",))
    assert _step(stack, mail) == "committed"  # every part throttled: a page kept with its pending ids
    faults.clear()
    assert _state(stack, mail).throttled_total == 2
    samples, families = scrape(stack)
    assert "sxsync_api_throttled:counter" in families
    assert samples[("sxsync_api_throttled_total", (("source", "gmail"),))] == 2
    with stack.rt.sessions() as session:
        (view,) = [v for v in connection_views(load_streams(session, ORG), stack.rt.clock()) if v.id == mail]
    assert view.throttled == 2


def test_every_log_line_of_a_page_job_names_its_org_connection_stream_and_job(tmp_path: Path, sqlite_url: str) -> None:
    log_dir = tmp_path / "logs"
    configure_logging("DEBUG", log_dir, stderr=False)
    try:
        with running_stack(data_dir=tmp_path, world=small_world(size=200), database_url=sqlite_url, tls=False) as stack:
            stack.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
            stack.connect(ORG, MEMBERS[0])
            assert stack.sync(timeout=60).failed == 0
            mail = connection_id(stack, MEMBERS[0], "gmail")
    finally:
        for handler in logging.getLogger().handlers:
            handler.flush()
        configure_logging("WARNING", None)
    lines = [json.loads(line) for line in (log_dir / "sxsync.log").read_text().splitlines()]
    stored = [e for e in lines if e["msg"] == "page stored"]
    assert stored, "the sync logged its pages"
    jobs = set()
    for entry in stored:
        assert (entry["connection"], entry["stream"], entry["source"]) == (mail, "messages", "gmail")
        assert isinstance(entry["org"], int) and isinstance(entry["job"], str) and len(entry["job"]) >= 32
        jobs.add(entry["job"])
    assert len(jobs) == len(stored), "one job id per page message"
    http = [e for e in lines if e["logger"].startswith(("urllib3", "googleapiclient")) and "job" in e]
    assert http, "the HTTP library's own lines inside a job carry the job's context too"
