"""Canary tokens: every secret the emulators issued during a full run, failure paths included, is searched
for in everything the product leaves behind — the SQLite file, DEBUG logs with tracebacks, every Redis
key (dead letters too), the ops page, /metrics, the connections API and error pages."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from sandbox.server import Sandbox
from sandbox.world import generate_world
from sync.connections import sources_of
from sync.logs import configure_logging
from sync.ops_actions import retry_now
from tests.conftest import redis_database
from tests.ops_ui.conftest import connection_id
from web.app import PROVIDER_TEXT
from web.stack import Stack, running_stack

ORG, DOMAIN = "acme", "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
ADMIN_KEY = "canary-admin-key-0123456789abcdef"
API_KEY = "canary-api-key-0123456789abcdef"
GMAIL_CALLS = ("list", "batch", "get", "history", "profile")


@pytest.fixture
def canary_redis() -> Iterator[str]:
    """Redis database 10, flushed around the test (other suites use 0 and 11-13)."""
    yield from redis_database(10)


def issued_secrets(sb: Sandbox) -> set[str]:
    """Every code, access token and refresh token the four emulators handed out."""
    google, identity = sb.google, sb.microsoft.identity
    salesforce, hubspot = sb.salesforce.auth, sb.hubspot.auth
    found: set[str] = set(google.codes) | set(google.access_tokens) | set(google.refresh_tokens)
    found |= set(identity.codes) | set(identity.refresh_index) | set(identity.access)
    found |= set(salesforce.codes) | set(salesforce.sessions) | set(salesforce.refresh_tokens)
    found |= set(hubspot.codes) | set(hubspot.tokens) | set(hubspot.grants)
    return {s for s in found if len(s) >= 16}  # short values would match by chance


def redis_bytes(url: str) -> bytes:
    """The value of every key in the database, whatever its type."""
    client = redis.Redis.from_url(url)
    chunks: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        chunks.append(key)
        if kind == b"string":
            chunks.append(client.get(key) or b"")
        elif kind == b"list":
            chunks.extend(client.lrange(key, 0, -1))
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                chunks += [field, value]
        elif kind == b"zset":
            chunks.extend(client.zrange(key, 0, -1))
        elif kind == b"set":
            chunks.extend(client.smembers(key))
    return b"\n".join(chunks)


def fetch_pages(stack: Stack) -> bytes:
    """What an operator, a consumer and an attacker can get over HTTP, failure pages included."""
    base = stack.rt.settings.public_url
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    api = {"Authorization": f"Bearer {API_KEY}"}
    answers = [
        requests.get(f"{base}/ops", headers=admin | {"Accept": "text/html"}, timeout=30),
        requests.get(f"{base}/metrics", headers=admin, timeout=30),
        requests.get(f"{base}/api/connections", params={"org": ORG}, headers=api, timeout=30),
        requests.get(f"{base}/api/network/contacts", params={"org": ORG}, headers=api, timeout=30),
        requests.get(f"{base}/oauth/callback/google", params={"error": "access_denied", "state": "x"}, timeout=30),
        requests.get(f"{base}/oauth/callback/microsoft", params={"code": "bogus", "state": "forged"}, timeout=30),
        requests.get(f"{base}/connect", params={"session": "forged.link"}, timeout=30),
        requests.get(
            f"{base}/api/network/contacts", params={"org": ORG}, headers={"Authorization": "Bearer x"}, timeout=30
        ),
        requests.get(f"{base}/ops", headers={"Authorization": "Bearer wrong"}, timeout=30),
    ]
    assert answers[0].status_code == 200 and answers[1].status_code == 200 and answers[2].status_code == 200
    assert all(a.status_code in (400, 401, 403, 404) for a in answers[4:]), [
        (a.url, a.status_code) for a in answers[6:]
    ]
    return b"\n".join(a.content for a in answers)


def dead_letter_one_page(stack: Stack, url: str) -> None:
    """Bob's Gmail page fails on every try (HTTP 500) until Dramatiq dead-letters it in Redis."""
    google = stack.sandbox.google
    google.faults.fail_randomly(1.0, "500", endpoints=GMAIL_CALLS)
    actor = stack.broker.get_actor("sync_page")
    send = stack.rt.enqueue
    stack.rt.enqueue = lambda c, s, v, _d: actor.send_with_options(args=(c, s, v), min_backoff=50, max_backoff=200)
    try:
        retry_now(stack.rt, connection_id(stack, MEMBERS[1], "gmail"), "messages", actor="test")
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 120
        while client.zcard("dramatiq:sync.XQ") == 0:
            assert time.monotonic() < deadline, "the failing page never reached the dead-letter queue"
            time.sleep(0.5)
    finally:
        stack.rt.enqueue = send
        google.faults.clear()


def test_no_issued_secret_is_left_anywhere_after_a_full_run_and_its_failure_paths(
    tmp_path: Path, canary_redis: str
) -> None:
    log_dir = tmp_path / "logs"
    configure_logging("DEBUG", log_dir, stderr=False)
    pages = b""
    try:
        world = generate_world(seed=5, size=200, org_domain=DOMAIN, members=MEMBERS)
        with running_stack(
            data_dir=tmp_path / "stack",
            world=world,
            database_url=f"sqlite:///{tmp_path / 'stack' / 'store.db'}",
            broker_url=canary_redis,
            admin_key=ADMIN_KEY,
            api_keys=f"{ORG}={API_KEY}",
        ) as stack:
            stack.seed_org(ORG, DOMAIN, MEMBERS)
            for email in MEMBERS[:2]:
                for provider in PROVIDER_TEXT:
                    if sources_of(provider):
                        assert stack.connect(ORG, email, provider).status_code == 200
            assert stack.sync(timeout=300).failed == 0
            sb = stack.sandbox
            sb.google.expire_access_tokens()  # every Google page now refreshes first
            sb.microsoft.identity.expire_access_tokens()
            assert stack.sync(timeout=300).failed == 0
            dead_letter_one_page(stack, canary_redis)
            assert sb.google.revoke_mailbox_tokens(MEMBERS[0]) == 1  # alice's grant dies: a refused refresh
            sb.google.expire_access_tokens(MEMBERS[0])
            stack.sync(timeout=300)
            pages = fetch_pages(stack)
            secrets = issued_secrets(sb)
            refreshes = sb.google.token_calls["refresh_token"]
    finally:
        for handler in logging.getLogger().handlers:
            handler.flush()
        configure_logging("WARNING", None)
    assert len(secrets) >= 20 and refreshes >= 2, "the run handed out codes, tokens and refreshed tokens"
    store = b"".join(p.read_bytes() for p in (tmp_path / "stack").glob("store.db*"))
    logs = (log_dir / "sxsync.log").read_bytes()
    in_redis = redis_bytes(canary_redis)
    assert b"Traceback" in logs, "the failure paths logged their tracebacks (scanned too)"
    assert b"dramatiq:sync.XQ" in in_redis and b"sync_page" in in_redis, "message bodies and a dead letter are scanned"
    places: dict[str, Any] = {"store file": store, "logs": logs, "redis": in_redis, "http pages": pages}
    leaks = sorted(
        (where, secret[:6] + "…") for where, blob in places.items() for secret in secrets if secret.encode() in blob
    )
    assert not leaks, f"issued secrets found: {leaks}"
