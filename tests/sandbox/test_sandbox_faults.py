"""Fault injection, quota and counters as a client sees them (real googleapiclient over HTTP)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError
from sandbox_helpers import connect, gmail

from sandbox import Sandbox
from sandbox.faults import FaultInjector


def _svc(sb: Sandbox) -> Any:
    return gmail(sb, connect(sb)["access_token"])


def test_429_with_retry_after_visible_to_client(sb: Sandbox) -> None:
    svc = _svc(sb)
    sb.google.faults.fail_next(1, "429", retry_after=3, endpoints=["list"])
    with pytest.raises(HttpError) as err:
        svc.users().messages().list(userId="me").execute()
    assert err.value.resp.status == 429
    assert err.value.resp["retry-after"] == "3"
    detail = err.value.error_details[0]
    assert detail["domain"] == "usageLimits" and detail["reason"] == "rateLimitExceeded"
    # an immediate retry is too early and gets recorded (and now succeeds: the rule is used up)
    assert "messages" in svc.users().messages().list(userId="me").execute()
    stats = sb.google.stats_snapshot()
    assert stats["early_retries"] == 1
    assert stats["faults"]["injected"] == {"429": 1}
    assert stats["statuses"]["429"] == 1


def test_retry_after_respected_is_not_early() -> None:
    now = [100.0]
    faults = FaultInjector(clock=lambda: now[0])
    faults.note_retry_after("alice", 2)
    now[0] = 102.5
    assert not faults.check_early("alice")
    assert faults.early_retries == 0


def test_other_fault_kinds(sb: Sandbox) -> None:
    svc = _svc(sb)
    expected = {"403": "userRateLimitExceeded", "500": "backendError", "503": "backendError"}
    for kind, reason in expected.items():
        sb.google.faults.fail_next(1, kind, endpoints=["profile"])
        with pytest.raises(HttpError) as err:
            svc.users().getProfile(userId="me").execute()
        assert err.value.resp.status == int(kind)
        assert err.value.error_details[0]["reason"] == reason
    sb.google.faults.fail_next(1, "502html")
    resp = requests.get(sb.google_settings()["GOOGLE_API_URL"] + "gmail/v1/users/me/profile", timeout=10)
    assert resp.status_code == 502 and resp.text.lstrip().startswith("<!DOCTYPE html>")


def test_probabilistic_faults_are_seeded(sb: Sandbox) -> None:
    def run() -> list[int]:
        inj = FaultInjector(seed=42)
        inj.fail_randomly(0.3, "503")
        return [1 if inj.draw("request", "get") else 0 for _ in range(200)]

    first = run()
    assert first == run()
    assert 30 < sum(first) < 90


def test_quota_bucket_throttles_per_user(sb: Sandbox) -> None:
    svc = _svc(sb)
    sb.google.quota_units_per_second = 10  # two messages.list calls (5 units each) per second
    svc.users().messages().list(userId="me", maxResults=1).execute()
    svc.users().messages().list(userId="me", maxResults=1).execute()
    with pytest.raises(HttpError) as err:
        svc.users().messages().list(userId="me", maxResults=1).execute()
    assert err.value.resp.status == 429 and int(err.value.resp["retry-after"]) >= 1
    sb.google.quota_error = "403"
    with pytest.raises(HttpError) as err:
        svc.users().messages().list(userId="me", maxResults=1).execute()
    assert err.value.resp.status == 403
    assert err.value.error_details[0]["reason"] == "userRateLimitExceeded"
    # another user has their own bucket
    bob = gmail(sb, connect(sb, login="bob@acme.test")["access_token"])
    bob.users().messages().list(userId="me", maxResults=1).execute()


def test_latency(sb: Sandbox) -> None:
    svc = _svc(sb)
    sb.google.faults.latency_ms = 150
    t0 = time.monotonic()
    svc.users().getProfile(userId="me").execute()
    assert time.monotonic() - t0 >= 0.15


def test_faults_and_stats_over_http(sb: Sandbox) -> None:
    base = sb.base_url + "/_sandbox/google"
    svc = _svc(sb)
    spec = {"rules": [{"kind": "503", "count": 1, "retry_after": 2, "endpoints": ["profile"]}]}
    assert requests.post(base + "/faults", json=spec, timeout=10).json()["rules"][0]["count"] == 1
    with pytest.raises(HttpError) as err:
        svc.users().getProfile(userId="me").execute()
    assert err.value.resp.status == 503 and err.value.resp["retry-after"] == "2"
    stats = requests.get(base + "/stats", timeout=10).json()
    assert stats["calls"]["profile"] == 1 and stats["faults"]["injected"] == {"503": 1}
    assert stats["calls"]["token:authorization_code"] == 1 and stats["calls"]["authorize"] == 1
    assert requests.post(base + "/stats/reset", timeout=10).ok
    assert requests.get(base + "/stats", timeout=10).json()["calls"] == {}
    cfg = requests.post(base + "/config", json={"access_token_ttl": 5, "history_retention": 10}, timeout=10).json()
    assert cfg["access_token_ttl"] == 5 and sb.google.history_retention == 10
    assert requests.post(base + "/config", json={"nope": 1}, timeout=10).status_code == 400
    assert requests.delete(base + "/faults", timeout=10).json()["rules"] == []
