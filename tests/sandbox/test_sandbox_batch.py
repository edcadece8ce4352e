"""Batch endpoint driven by googleapiclient's BatchHttpRequest, exactly as the product sends it."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest
from sandbox_helpers import connect, gmail

from sandbox import Sandbox, World


def _batch(sb: Sandbox, results: dict[str, tuple[Any, Any]]) -> BatchHttpRequest:
    def callback(request_id: str, response: Any, exception: Any) -> None:
        results[request_id] = (response, exception)

    return BatchHttpRequest(callback=callback, batch_uri=sb.google_settings()["GOOGLE_API_URL"] + "batch/gmail/v1")


def _ids(world: World, n: int) -> list[str]:
    return [m.id for m in world.mailboxes["alice@acme.test"][-n:]]


def test_batch_of_100_metadata_gets(sb: Sandbox, world: World) -> None:
    svc = gmail(sb, connect(sb)["access_token"])
    results: dict[str, tuple[Any, Any]] = {}
    batch = _batch(sb, results)
    ids = _ids(world, 100)
    for gid in ids:
        batch.add(
            svc.users()
            .messages()
            .get(userId="me", id=gid, format="metadata", metadataHeaders=["From", "To", "Message-ID"]),
            request_id=gid,
        )
    batch.execute()
    assert set(results) == set(ids)
    for gid, (resp, exc) in results.items():
        assert exc is None
        assert resp["id"] == gid
        assert {h["name"].lower() for h in resp["payload"]["headers"]} <= {"from", "to", "message-id"}
    stats = sb.google.stats_snapshot()
    assert stats["calls"]["batch"] == 1
    assert stats["calls"]["batch_parts"] == 100
    assert stats["ops"]["get"] == 100
    assert stats["mailboxes"]["alice@acme.test"]["quota_units"] == 500
    assert stats["http_requests"] == 3  # authorize, token, batch


def test_batch_of_101_is_refused(sb: Sandbox, world: World) -> None:
    svc = gmail(sb, connect(sb)["access_token"])
    results: dict[str, tuple[Any, Any]] = {}
    batch = _batch(sb, results)
    for gid in _ids(world, 101):
        batch.add(svc.users().messages().get(userId="me", id=gid, format="minimal"))
    with pytest.raises(HttpError) as err:
        batch.execute()
    assert err.value.resp.status == 400
    assert sb.google.stats_snapshot()["ops"].get("get", 0) == 0


def test_parts_fail_individually(sb: Sandbox, world: World) -> None:
    svc = gmail(sb, connect(sb)["access_token"])
    sb.google.faults.fail_next(2, "429", retry_after=7, scope="part")
    sb.google.faults.fail_next(1, "503", scope="part")
    results: dict[str, tuple[Any, Any]] = {}
    batch = _batch(sb, results)
    ids = _ids(world, 10)
    for gid in ids:
        batch.add(svc.users().messages().get(userId="me", id=gid, format="minimal"), request_id=gid)
    batch.add(svc.users().messages().get(userId="me", id="0000000000000000", format="minimal"), request_id="gone")
    batch.execute()
    statuses = [results[gid][1].resp.status if results[gid][1] is not None else 200 for gid in ids]
    assert statuses == [429, 429, 503] + [200] * 7
    throttled = results[ids[0]][1]
    assert throttled.resp["retry-after"] == "7"
    assert throttled.error_details[0]["reason"] == "rateLimitExceeded"
    assert results["gone"][1].resp.status == 404
    # coming back before the part's Retry-After elapsed is recorded
    svc.users().getProfile(userId="me").execute()
    assert sb.google.stats_snapshot()["early_retries"] == 1


def test_expired_token_parts_are_refreshed_and_resent_by_the_client(sb: Sandbox, world: World) -> None:
    tok = connect(sb)
    svc = gmail(sb, tok["access_token"], refresh_token=tok["refresh_token"])
    sb.google.expire_access_tokens("alice@acme.test")
    results: dict[str, tuple[Any, Any]] = {}
    batch = _batch(sb, results)
    for gid in _ids(world, 5):
        batch.add(svc.users().messages().get(userId="me", id=gid, format="minimal"))
    batch.execute(http=svc._http)
    assert all(exc is None for _, exc in results.values())
    stats = sb.google.stats_snapshot()
    assert stats["calls"]["batch"] == 2
    assert stats["token_calls"]["refresh_token"] == 1


def test_whole_batch_can_fail(sb: Sandbox, world: World) -> None:
    svc = gmail(sb, connect(sb)["access_token"])
    sb.google.faults.fail_next(1, "502html", endpoints=["batch"])
    batch = _batch(sb, {})
    batch.add(svc.users().messages().get(userId="me", id=_ids(world, 1)[0], format="minimal"))
    with pytest.raises(HttpError) as err:
        batch.execute()
    assert err.value.resp.status == 502
    assert err.value.resp["content-type"].startswith("text/html")
