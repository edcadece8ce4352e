"""Replaying history.list records (shaped per the discovery document) into fetches and deletions."""

from __future__ import annotations

from typing import Any

from connectors.gmail_history import Changes, replay


def added(mid: str, *labels: str) -> dict[str, Any]:
    return {"id": "1", "messagesAdded": [{"message": {"id": mid, "threadId": mid, "labelIds": list(labels)}}]}


def deleted(mid: str) -> dict[str, Any]:
    return {"id": "2", "messagesDeleted": [{"message": {"id": mid, "threadId": mid}}]}


def labels(kind: str, mid: str, changed: list[str], now: list[str]) -> dict[str, Any]:
    return {"id": "3", kind: [{"message": {"id": mid, "threadId": mid, "labelIds": now}, "labelIds": changed}]}


def test_added_messages_are_fetched_in_order() -> None:
    assert replay([added("a", "INBOX"), added("b", "SENT")]) == Changes(("a", "b"), ())


def test_added_then_deleted_in_the_same_page_is_not_fetched() -> None:
    assert replay([added("a", "INBOX"), added("b"), deleted("a")]) == Changes(("b",), ("a",))


def test_trash_and_spam_are_deletions_and_leaving_trash_fetches_again() -> None:
    records = [
        labels("labelsAdded", "a", ["TRASH"], ["TRASH"]),
        labels("labelsAdded", "b", ["SPAM"], ["SPAM"]),
        labels("labelsRemoved", "c", ["TRASH"], ["INBOX"]),
        labels("labelsAdded", "d", ["STARRED"], ["INBOX", "STARRED"]),
    ]
    assert replay(records) == Changes(("c",), ("a", "b"))


def test_trash_then_untrash_fetches_and_untrash_into_spam_does_not() -> None:
    records = [
        labels("labelsAdded", "a", ["TRASH"], ["TRASH"]),
        labels("labelsRemoved", "a", ["TRASH"], ["INBOX"]),
        labels("labelsRemoved", "b", ["TRASH"], ["SPAM"]),
    ]
    assert replay(records) == Changes(("a",), ())


def test_drafts_and_spam_arrivals_are_never_fetched() -> None:
    assert replay([added("a", "DRAFT"), added("b", "SPAM")]) == Changes((), ("a", "b"))


def test_junk_records_are_skipped() -> None:
    records: list[Any] = [
        None,
        "x",
        {"messagesAdded": [None, {"message": {"id": 5}}, {"message": None}]},
        {"messagesDeleted": "nope"},
        added("ok"),
    ]
    assert replay(records) == Changes(("ok",), ())
