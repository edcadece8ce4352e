"""`/metrics` scraped with Prometheus's text parser matches a seeded scenario, figure by figure.

The scenario is set in the real store (SQLite and PostgreSQL) and the real Redis broker: known
totals per stream, one failed, one retrying and one stalled stream, a paused and a reauth-required
connection, token events in the audit log, an identity conflict, and messages ready, delayed and
dead in Redis (dead-lettered by the broker's own nack).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from models.tables import AuditEvent, Connection, IdentityConflict, Org, SyncState
from tests.ops_ui.conftest import ADMIN_KEY, DOMAIN, MEMBERS, ORG, connection_id, set_state, small_world
from web.ops_report import status_extras
from web.stack import Stack, running_stack

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(stack: Stack) -> tuple[Samples, set[str]]:
    response = requests.get(
        stack.rt.settings.public_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(response.text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}
    return samples, {f"{f.name}:{f.type}" for f in families}


def token_events(stack: Stack, action: str) -> int:
    with stack.rt.sessions() as session:
        return int(session.execute(select(func.count()).where(AuditEvent.action == action)).scalar_one())


def seed(stack: Stack) -> None:
    """The scenario (see the module docstring)."""
    now = stack.rt.clock()
    with stack.rt.writes.begin() as session:
        session.execute(
            update(SyncState).values(
                records_total=10,
                api_calls_total=3,
                pages_total=2,
                last_success_at=now - timedelta(seconds=60),
                last_progress_at=now,
                running=False,
                failed=False,
                attempts=0,
                next_run_at=None,
            )
        )
    alice, bob = MEMBERS[0], MEMBERS[1]
    set_state(stack, connection_id(stack, alice, "gmail"), "messages", records_total=100, api_calls_total=7)
    set_state(stack, connection_id(stack, bob, "google_calendar"), "events", failed=True, attempts=6)
    set_state(stack, connection_id(stack, alice, "google_contacts"), "connections", running=True, attempts=1)
    set_state(
        stack,
        connection_id(stack, bob, "gmail"),
        "messages",
        running=True,
        last_progress_at=now - timedelta(hours=2),
        last_success_at=now - timedelta(hours=3),
    )
    with stack.rt.writes.begin() as session:
        paused = connection_id(stack, alice, "google_calendar")
        reauth = connection_id(stack, bob, "google_contacts")
        session.execute(update(Connection).where(Connection.id == paused).values(status="paused"))
        session.execute(update(Connection).where(Connection.id == reauth).values(status="reauth_required"))
        org_id = session.execute(select(Org.id).where(Org.slug == ORG)).scalar_one()
        for action, n in (("token.refresh", 3), ("token.refresh_failed", 2)):
            for _ in range(n):
                session.add(AuditEvent(org_id=org_id, actor="test", action=action, target="connection:1"))
        session.add(IdentityConflict(org_id=org_id, key="email:sales@globex.test", records=40))


def fill_redis(stack: Stack) -> None:
    """Three page jobs enqueued, one delayed, then one fetched and nacked: 2 ready, 1 delayed, 1 dead."""
    actor = stack.broker.get_actor("sync_page")
    for version in range(3):
        actor.send(1, "messages", version)
    actor.send_with_options(args=(1, "messages", 9), delay=600_000)
    consumer = stack.broker.consume("sync", prefetch=1, timeout=200)
    message = None
    for _ in range(100):
        message = next(consumer)
        if message is not None:
            break
    assert message is not None
    consumer.nack(message)
    consumer.close()


def test_metrics_match_the_seeded_scenario(tmp_path: Path, store_url: str, redis_url: str) -> None:
    with running_stack(
        data_dir=tmp_path,
        world=small_world(size=60),
        database_url=store_url,
        broker_url=redis_url,
        workers=0,
        admin_key=ADMIN_KEY,
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        for email in MEMBERS[:2]:
            stack.connect(ORG, email)
        refreshes, failures = token_events(stack, "token.refresh"), token_events(stack, "token.refresh_failed")
        seed(stack)
        fill_redis(stack)
        started = time.monotonic()
        samples, families = scrape(stack)
        elapsed = time.monotonic() - started + 5

        def value(name: str, **labels: str) -> float:
            return samples[(name, tuple(sorted(labels.items())))]

        assert value("sxsync_queue_depth", queue="sync") == 2
        assert value("sxsync_queue_depth", queue="sync.DQ") == 1
        assert value("sxsync_queue_in_flight", queue="sync") == 0
        assert value("sxsync_dead_letters", queue="sync") == 1
        assert 0 <= value("sxsync_queue_oldest_message_age_seconds", queue="sync") < 120
        assert {
            s: value("sxsync_connections", status=s) for s in ("active", "paused", "reauth_required", "revoked")
        } == {
            "active": 4,
            "paused": 1,
            "reauth_required": 1,
            "revoked": 0,
        }
        records = {
            s: value("sxsync_records_synced_total", source=s) for s in ("gmail", "google_calendar", "google_contacts")
        }
        assert records == {"gmail": 110, "google_calendar": 20, "google_contacts": 40}
        calls = {s: value("sxsync_api_calls_total", source=s) for s in ("gmail", "google_calendar", "google_contacts")}
        assert calls == {"gmail": 10, "google_calendar": 6, "google_contacts": 12}
        assert value("sxsync_pages_synced_total", source="google_contacts") == 8
        assert 3 * 3600 <= value("sxsync_lag_seconds", provider="google") < 3 * 3600 + elapsed + 60
        assert value("sxsync_token_refreshes_total") == refreshes + 3
        assert value("sxsync_token_refresh_failures_total") == failures + 2
        assert value("sxsync_streams_stalled") == 1
        assert value("sxsync_streams_failed") == 1
        assert value("sxsync_streams_failing") == 2
        assert value("sxsync_identity_conflicts") == 1
        assert {
            "sxsync_records_synced:counter",
            "sxsync_api_calls:counter",
            "sxsync_token_refreshes:counter",
            "sxsync_queue_depth:gauge",
            "sxsync_dead_letters:gauge",
            "sxsync_lag_seconds:gauge",
        } <= families

        # a second scrape counts only new token events (incrementally), and the same totals
        with stack.rt.writes.begin() as session:
            session.add(AuditEvent(org_id=None, actor="test", action="token.refresh", target="connection:2"))
        again, _ = scrape(stack)
        assert again[("sxsync_token_refreshes_total", ())] == refreshes + 4
        assert again[("sxsync_records_synced_total", (("source", "gmail"),))] == 110

        # `sxsync status --json` gets the same picture from `status_extras`
        extras = status_extras(stack.rt)
        assert [(q["queue"], q["ready"], q["delayed"], q["dead"]) for q in extras["queues"]] == [("sync", 2, 1, 1)]
        assert [(s["connection"], s["stream"]) for s in extras["stalled"]] == [
            (connection_id(stack, MEMBERS[1], "gmail"), "messages")
        ]
        assert extras["conflict_count"] == 1 and extras["conflicts"][0]["key"] == "email:sales@globex.test"
        assert [(d["connection_id"], d["stream"]) for d in extras["dead_letters"]] == [(1, "messages")]
