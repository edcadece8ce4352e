"""Gmail API emulator driven by the real google-api-python-client: profile, list paging, get formats."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError
from sandbox_helpers import connect, gmail

from sandbox import Sandbox, World
from sandbox.world import MailMessage


def _svc(sb: Sandbox, login: str = "alice@acme.test") -> Any:
    return gmail(sb, connect(sb, login=login)["access_token"])


def _visible(msgs: list[MailMessage]) -> list[MailMessage]:
    return [m for m in msgs if "SPAM" not in m.label_ids and "TRASH" not in m.label_ids]


def test_profile(sb: Sandbox, world: World) -> None:
    profile = _svc(sb).users().getProfile(userId="me").execute()
    alice = world.mailboxes["alice@acme.test"]
    assert profile["emailAddress"] == "alice@acme.test"
    assert profile["messagesTotal"] == len(alice)
    assert profile["threadsTotal"] == len({m.thread_id for m in alice})
    assert int(profile["historyId"]) > 0


def test_list_paging_returns_every_id_once_newest_first(sb: Sandbox, world: World) -> None:
    svc = _svc(sb)
    expected = _visible(world.mailboxes["alice@acme.test"])
    assert len(expected) >= 1200
    ids: list[str] = []
    pages = 0
    token = None
    while True:
        resp = svc.users().messages().list(userId="me", maxResults=500, pageToken=token).execute()
        pages += 1
        ids += [m["id"] for m in resp["messages"]]
        assert resp["resultSizeEstimate"] == len(expected)
        token = resp.get("nextPageToken")
        if not token:
            break
    assert pages == -(-len(expected) // 500)
    assert len(ids) == len(set(ids)) == len(expected)
    newest_first = sorted(expected, key=lambda m: (-m.internal_date_ms, m.id))
    assert ids == [m.id for m in newest_first]
    stats = sb.google.stats_snapshot()
    assert stats["calls"]["list"] == pages
    assert stats["mailboxes"]["alice@acme.test"]["quota_units"] == 5 * pages


def test_list_defaults_clamp_and_filters(sb: Sandbox, world: World) -> None:
    svc = _svc(sb)
    assert len(svc.users().messages().list(userId="me").execute()["messages"]) == 100
    assert len(svc.users().messages().list(userId="me", maxResults=5000).execute()["messages"]) == 500
    alice = world.mailboxes["alice@acme.test"]
    sent = svc.users().messages().list(userId="me", labelIds=["SENT"], maxResults=500).execute()
    assert sent["resultSizeEstimate"] == len([m for m in _visible(alice) if "SENT" in m.label_ids])
    everything = svc.users().messages().list(userId="me", includeSpamTrash=True, maxResults=1).execute()
    assert everything["resultSizeEstimate"] == len(alice) > len(_visible(alice))
    spam = svc.users().messages().list(userId="me", labelIds=["SPAM"], includeSpamTrash=True).execute()
    assert spam["resultSizeEstimate"] == len([m for m in alice if "SPAM" in m.label_ids]) > 0


def test_tampered_page_token_is_400(sb: Sandbox) -> None:
    svc = _svc(sb)
    token = svc.users().messages().list(userId="me", maxResults=10).execute()["nextPageToken"]
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "garbage"):
        with pytest.raises(HttpError) as err:
            svc.users().messages().list(userId="me", maxResults=10, pageToken=bad).execute()
        assert err.value.resp.status == 400


def test_empty_mailbox_has_no_messages_key(sb: Sandbox) -> None:
    sb.google.add_mailbox("dave@acme.test")
    resp = _svc(sb, login="dave@acme.test").users().messages().list(userId="me").execute()
    assert resp == {"resultSizeEstimate": 0}


def test_get_metadata_filters_headers_case_insensitively(sb: Sandbox, world: World) -> None:
    svc = _svc(sb)
    msg = next(m for m in world.mailboxes["alice@acme.test"] if m.header("Cc") and m.header("Date"))
    got = (
        svc.users()
        .messages()
        .get(userId="me", id=msg.id, format="metadata", metadataHeaders=["to", "FROM", "cc", "Message-Id", "date"])
        .execute()
    )
    wanted = {"to", "from", "cc", "message-id", "date"}
    assert got["payload"]["headers"] == [{"name": k, "value": v} for k, v in msg.headers if k.lower() in wanted]
    assert got["payload"]["mimeType"] == "multipart/alternative"
    assert got["payload"]["partId"] == "" and got["payload"]["body"] == {"size": 0}
    assert got["id"] == msg.id and got["threadId"] == msg.thread_id
    assert got["internalDate"] == str(msg.internal_date_ms)
    assert got["labelIds"] == list(msg.label_ids)
    assert got["sizeEstimate"] == msg.size_estimate and got["snippet"] == msg.snippet
    assert int(got["historyId"]) > 0
    all_headers = svc.users().messages().get(userId="me", id=msg.id, format="metadata").execute()
    assert [(h["name"], h["value"]) for h in all_headers["payload"]["headers"]] == list(msg.headers)


def test_get_minimal_and_404(sb: Sandbox, world: World) -> None:
    svc = _svc(sb)
    msg = world.mailboxes["alice@acme.test"][0]
    minimal = svc.users().messages().get(userId="me", id=msg.id, format="minimal").execute()
    assert "payload" not in minimal and minimal["id"] == msg.id
    with pytest.raises(HttpError) as err:
        svc.users().messages().get(userId="me", id="ffffffffffffffff", format="metadata").execute()
    assert err.value.resp.status == 404
    assert err.value.reason == "Requested entity was not found."
    with pytest.raises(HttpError) as err:
        svc.users().messages().get(userId="me", id=world.mailboxes["bob@acme.test"][0].id).execute()
    assert err.value.resp.status in (403, 404)  # bob's id is not in alice's mailbox


def test_user_id_must_be_me_or_own_address(sb: Sandbox) -> None:
    svc = _svc(sb)
    assert svc.users().getProfile(userId="alice@acme.test").execute()["emailAddress"] == "alice@acme.test"
    with pytest.raises(HttpError) as err:
        svc.users().getProfile(userId="bob@acme.test").execute()
    assert err.value.resp.status == 403


def test_error_body_shape(sb: Sandbox) -> None:
    tok = connect(sb)["access_token"]
    url = sb.google_settings()["GOOGLE_API_URL"] + "gmail/v1/users/me/messages/nope?format=metadata"
    resp = requests.get(url, headers={"Authorization": f"Bearer {tok}"}, timeout=10)
    assert resp.status_code == 404
    assert resp.json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "errors": [{"message": "Requested entity was not found.", "domain": "global", "reason": "notFound"}],
            "status": "NOT_FOUND",
        }
    }
    anon = requests.get(sb.google_settings()["GOOGLE_API_URL"] + "gmail/v1/users/me/profile", timeout=10)
    assert anon.status_code == 401 and anon.json()["error"]["status"] == "UNAUTHENTICATED"
    assert anon.headers["WWW-Authenticate"].startswith("Bearer")


def test_fields_partial_response(sb: Sandbox) -> None:
    svc = _svc(sb)
    resp = svc.users().messages().list(userId="me", maxResults=3, fields="messages/id,nextPageToken").execute()
    assert set(resp) == {"messages", "nextPageToken"}
    assert all(set(m) == {"id"} for m in resp["messages"])
