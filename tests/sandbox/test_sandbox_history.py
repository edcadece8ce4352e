"""users.history.list after mutations (in-process and over the control API), paging, filters and 404."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from googleapiclient.errors import HttpError
from sandbox_helpers import connect, gmail

from sandbox import Sandbox


def _history(svc: Any, start: str, **kw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = None
    while True:
        resp = svc.users().history().list(userId="me", startHistoryId=start, pageToken=token, **kw).execute()
        out += resp.get("history", [])
        token = resp.get("nextPageToken")
        if not token:
            return out


def test_history_after_mutations(sb: Sandbox) -> None:
    alice = gmail(sb, connect(sb)["access_token"])
    bob = gmail(sb, connect(sb, login="bob@acme.test")["access_token"])
    start_a = alice.users().getProfile(userId="me").execute()["historyId"]
    start_b = bob.users().getProfile(userId="me").execute()["historyId"]
    assert alice.users().history().list(userId="me", startHistoryId=start_a).execute() == {"historyId": start_a}

    ids = sb.google.deliver(
        sender="Alice <alice@acme.test>",
        to=["Dana Reyes <dana@globex.test>"],
        cc=["bob@acme.test"],
        bcc=["carol@acme.test"],
        subject="Pilot kickoff",
    )
    assert set(ids) == {"alice@acme.test", "bob@acme.test", "carol@acme.test"}
    new_a = ids["alice@acme.test"]
    old = alice.users().messages().list(userId="me", maxResults=3).execute()["messages"]
    assert old[0]["id"] == new_a  # newest first
    old[1] = alice.users().messages().list(userId="me", labelIds=["INBOX"], maxResults=1).execute()["messages"][0]
    sb.google.trash_message("alice@acme.test", old[1]["id"])
    sb.google.delete_message("alice@acme.test", old[2]["id"])

    hist = _history(alice, start_a)
    assert [list(h)[-1] for h in hist] == ["messagesAdded", "labelsAdded", "labelsRemoved", "messagesDeleted"]
    added = hist[0]["messagesAdded"][0]["message"]
    assert added["id"] == new_a and "SENT" in added["labelIds"]
    assert hist[1]["labelsAdded"][0]["labelIds"] == ["TRASH"]
    assert hist[3]["messagesDeleted"][0]["message"]["id"] == old[2]["id"]
    assert all(h["messages"] for h in hist)
    assert [int(h["id"]) for h in hist] == sorted(int(h["id"]) for h in hist)
    current = alice.users().getProfile(userId="me").execute()["historyId"]
    assert int(current) == int(hist[-1]["id"])

    only_added = _history(alice, start_a, historyTypes=["messageAdded"])
    assert [h["messagesAdded"][0]["message"]["id"] for h in only_added] == [new_a]

    # headers as each mailbox sees them: Bcc only in the sender's copy, same Message-ID everywhere
    def headers(svc: Any, gid: str) -> dict[str, str]:
        got = svc.users().messages().get(userId="me", id=gid, format="metadata").execute()
        return {h["name"]: h["value"] for h in got["payload"]["headers"]}

    h_a, h_b = headers(alice, new_a), headers(bob, ids["bob@acme.test"])
    assert h_a["Bcc"] == "carol@acme.test" and "Bcc" not in h_b
    assert h_a["Message-ID"] == h_b["Message-ID"]
    assert [h["messagesAdded"][0]["message"]["id"] for h in _history(bob, start_b)] == [ids["bob@acme.test"]]
    # trashed message: hidden from list by default
    visible = {m["id"] for m in alice.users().messages().list(userId="me", maxResults=10).execute()["messages"]}
    assert old[1]["id"] not in visible


def test_reply_joins_thread(sb: Sandbox) -> None:
    ids = sb.google.deliver(
        sender="dana@globex.test", to=["alice@acme.test"], subject="Hi", message_id="<first@globex.test>"
    )
    reply = sb.google.deliver(
        sender="alice@acme.test", to=["dana@globex.test"], subject="Re: Hi", in_reply_to="<first@globex.test>"
    )
    box = sb.google.mailbox("alice@acme.test")
    assert box.entries[reply["alice@acme.test"]].msg.thread_id == ids["alice@acme.test"]


def test_history_paging(sb: Sandbox) -> None:
    alice = gmail(sb, connect(sb)["access_token"])
    start = alice.users().getProfile(userId="me").execute()["historyId"]
    for i in range(12):
        sb.google.deliver(sender=f"p{i}@globex.test", to=["alice@acme.test"], subject=f"n{i}")
    first = alice.users().history().list(userId="me", startHistoryId=start, maxResults=5).execute()
    assert len(first["history"]) == 5 and "nextPageToken" in first
    assert len(_history(alice, start, maxResults=5)) == 12


def test_expired_start_history_id_is_404(sb: Sandbox) -> None:
    alice = gmail(sb, connect(sb)["access_token"])
    start = alice.users().getProfile(userId="me").execute()["historyId"]
    sb.google.deliver(sender="x@globex.test", to=["alice@acme.test"])
    sb.google.expire_history("alice@acme.test")
    with pytest.raises(HttpError) as err:
        alice.users().history().list(userId="me", startHistoryId=start).execute()
    assert err.value.resp.status == 404
    fresh = alice.users().getProfile(userId="me").execute()["historyId"]
    assert alice.users().history().list(userId="me", startHistoryId=fresh).execute() == {"historyId": fresh}
    with pytest.raises(HttpError) as err:
        alice.users().history().list(userId="me").execute()
    assert err.value.resp.status == 400


def test_history_retention_window(sb: Sandbox) -> None:
    alice = gmail(sb, connect(sb)["access_token"])
    start = alice.users().getProfile(userId="me").execute()["historyId"]
    sb.google.history_retention = 3
    for i in range(3):
        sb.google.deliver(sender=f"p{i}@globex.test", to=["alice@acme.test"])
    assert len(_history(alice, start)) == 3  # still exactly covered
    sb.google.deliver(sender="late@globex.test", to=["alice@acme.test"])
    with pytest.raises(HttpError) as err:
        alice.users().history().list(userId="me", startHistoryId=start).execute()
    assert err.value.resp.status == 404


def test_control_api_over_http(sb: Sandbox) -> None:
    base = sb.base_url + "/_sandbox/google"
    alice = gmail(sb, connect(sb)["access_token"])
    start = alice.users().getProfile(userId="me").execute()["historyId"]
    resp = requests.post(
        base + "/deliver",
        json={"from": "dana@globex.test", "to": ["alice@acme.test"], "subject": "over http"},
        timeout=10,
    )
    gid = resp.json()["ids"]["alice@acme.test"]
    raw = {"headers": [["From", "x@y.test"], ["To", "alice@acme.test"], ["Subject", "raw"]], "labelIds": ["INBOX"]}
    added = requests.post(base + "/mailboxes/alice@acme.test/messages", json=raw, timeout=10).json()["id"]
    assert requests.post(f"{base}/mailboxes/alice@acme.test/messages/{gid}/trash", timeout=10).ok
    assert requests.delete(f"{base}/mailboxes/alice@acme.test/messages/{added}", timeout=10).ok
    assert requests.delete(f"{base}/mailboxes/alice@acme.test/messages/{added}", timeout=10).status_code == 404
    kinds = [list(h)[-1] for h in _history(alice, start)]
    assert kinds == ["messagesAdded", "messagesAdded", "labelsAdded", "labelsRemoved", "messagesDeleted"]
    assert requests.post(base + "/history/expire", json={"mailbox": "alice@acme.test"}, timeout=10).ok
    with pytest.raises(HttpError):
        alice.users().history().list(userId="me", startHistoryId=start).execute()
    generated = requests.post(base + "/deliver", json={"generate": 3}, timeout=10).json()["delivered"]
    assert len(generated) == 3 and all(generated)
    summary = requests.get(base + "/mailboxes", timeout=10).json()
    assert set(summary) == {"alice@acme.test", "bob@acme.test", "carol@acme.test"}
    assert requests.post(base + "/mailboxes/alice@acme.test/revoke", timeout=10).json() == {"revoked": 1}
    with pytest.raises(HttpError) as err:
        alice.users().getProfile(userId="me").execute()
    assert err.value.resp.status == 401
