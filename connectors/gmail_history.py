"""Replay one page of Gmail history records into what to fetch and what to delete, last change winning."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.gmail_mapping import is_hidden


@dataclass(frozen=True)
class Changes:
    """Message ids to (re)fetch and ids gone from view, each in first-seen order, disjoint."""

    fetch: tuple[str, ...]
    delete: tuple[str, ...]


def _items(record: Mapping[str, Any], key: str) -> Iterable[tuple[str, Mapping[str, Any], Any]]:
    """(message id, message, changed labelIds) of each well-formed change of kind `key`."""
    for item in record.get(key) or ():
        message = item.get("message") if isinstance(item, Mapping) else None
        if isinstance(message, Mapping) and isinstance(message.get("id"), str):
            yield message["id"], message, item.get("labelIds")


def replay(records: Iterable[Any]) -> Changes:
    """Added -> fetch (unless in trash/spam/drafts); deleted or moved to trash/spam -> delete; taken out
    of trash/spam -> fetch again. An id added then deleted within the page is never fetched."""
    fetch: dict[str, bool] = {}  # id -> fetch (True) or delete (False); insertion order kept
    for record in records:
        if not isinstance(record, Mapping):
            continue
        for message_id, message, _ in _items(record, "messagesAdded"):
            fetch[message_id] = not is_hidden(message.get("labelIds"))
        for message_id, _, _ in _items(record, "messagesDeleted"):
            fetch[message_id] = False
        for message_id, _, changed in _items(record, "labelsAdded"):
            if is_hidden(changed):
                fetch[message_id] = False
        for message_id, message, changed in _items(record, "labelsRemoved"):
            if is_hidden(changed) and not is_hidden(message.get("labelIds")):
                fetch[message_id] = True
    return Changes(tuple(i for i, f in fetch.items() if f), tuple(i for i, f in fetch.items() if not f))
