"""`sxsync demo` end to end, then the read side of its store through `contacts`, `status`, `apikey` and `web`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from models.db import make_engine, session_factory
from models.network import iter_contacts
from models.orgs import require_org
from tests.cli.conftest import Cli, clean_env, free_port, http, stop, store_env, wait_http

SUMMARY_KEYS = {"org", "providers", "contacts", "activities", "interactions", "rejected", "seconds"}


@dataclass(frozen=True)
class Demo:
    dir: Path
    summary: dict[str, Any]
    stdout: str
    cli: Cli  # sxsync on the demo's store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """One `sxsync demo --json --size 200` for the module (it owns nothing but its data dir)."""
    root = tmp_path_factory.mktemp("demo")
    data = root / "D"
    done = Cli(clean_env(), root).run("demo", "--json", "--size", "200", "--data-dir", str(data), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    key = (data / "secret.key").read_text().strip()
    env = store_env(data, f"sqlite:///{data / 'sxsync.db'}", key)
    return Demo(data, json.loads(done.stdout), done.stdout, Cli(env, root))


@pytest.fixture
def demo_contacts(demo: Demo) -> Iterator[list[dict[str, Any]]]:
    """The demo org's contacts read straight from its store."""
    engine = make_engine(demo.cli.env["SXSYNC_DATABASE_URL"])
    try:
        with session_factory(engine)() as session:
            yield list(iter_contacts(session, require_org(session, "acme").id))
    finally:
        engine.dispose()


def test_demo_json_prints_one_summary_object_and_leaves_store_and_logs(demo: Demo) -> None:
    assert demo.stdout.count("\n") == 1, "one JSON object on one line, nothing else on stdout"
    summary = demo.summary
    assert set(summary) >= SUMMARY_KEYS
    assert summary["org"] == "acme"
    assert "gmail" in summary["providers"]  # and every other source a Google consent covers
    for figures in summary["providers"].values():
        assert set(figures) == {"records", "api_calls"} and figures["api_calls"] > 0
    assert summary["providers"]["gmail"]["records"] > 0
    assert summary["contacts"] > 0 and summary["activities"] > 0 and summary["interactions"] > 0
    assert isinstance(summary["rejected"], int) and isinstance(summary["seconds"], int | float)
    assert (demo.dir / "sxsync.db").stat().st_size > 0
    assert (demo.dir / "logs").is_dir() and (demo.dir / "logs" / "sxsync.log").stat().st_size > 0


def test_contacts_json_lines_equal_the_store_network(demo: Demo, demo_contacts: list[dict[str, Any]]) -> None:
    out = demo.cli.ok("contacts", "--org", "acme", "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert listed == json.loads(json.dumps(demo_contacts))
    assert len(listed) == demo.summary["contacts"]


def test_status_json_shows_the_gmail_streams_idle_with_records(demo: Demo) -> None:
    report = json.loads(demo.cli.ok("status", "--json"))
    streams = report["streams"]
    assert {s["member"] for s in streams} == {"alice@acme.test", "bob@acme.test"}  # the demo connects two reps
    for stream in streams:
        assert (stream["state"], stream["connection_status"]) == ("idle", "active")
        assert stream["last_success_at"] and stream["last_error"] is None and stream["lag_seconds"] is not None
    gmail = [s for s in streams if s["source"] == "gmail"]
    assert [s["stream"] for s in gmail] == ["messages", "messages"]
    assert all(s["records"] > 0 and s["api_calls"] > 0 for s in gmail)
    assert sum(s["records"] for s in gmail) == demo.summary["providers"]["gmail"]["records"]
    assert sum(s["records"] for s in streams) == sum(p["records"] for p in demo.summary["providers"].values())
    assert (report["running"], report["failed"]) == (0, 0)


def test_a_created_api_key_reads_its_org_through_sxsync_web(
    demo: Demo, demo_contacts: list[dict[str, Any]], tmp_path: Path
) -> None:
    key = demo.cli.ok("apikey", "create", "--org", "acme").strip()
    assert key and "\n" not in key
    port = free_port()
    log = tmp_path / "web.log"
    web = demo.cli.popen("web", "--port", str(port), log=log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", web, log)
        client = http()
        url = f"{base}/api/network/contacts"
        feed = client.get(url, params={"org": "acme", "limit": 1000}, headers={"Authorization": f"Bearer {key}"})
        assert feed.status_code == 200, feed.text
        body = feed.json()
        assert body["has_more"] is False
        replayed: dict[str, Any] = {}
        for item in body["items"]:
            if item["change"] == "upserted":
                replayed[item["contact"]["id"]] = item["contact"]
            else:
                replayed.pop(item["id"], None)
        expected = json.loads(json.dumps(demo_contacts))
        assert sorted(replayed.values(), key=lambda c: c["id"]) == sorted(expected, key=lambda c: c["id"])
        assert client.get(url, params={"org": "acme"}).status_code == 401
        assert client.get(url, params={"org": "acme"}, headers={"Authorization": "Bearer sxk_nope"}).status_code == 401
        other = client.get(url, params={"org": "globex"}, headers={"Authorization": f"Bearer {key}"})
        assert other.status_code == 404
    finally:
        stop(web)
    assert key not in log.read_text(), "the API key reached the web log"
