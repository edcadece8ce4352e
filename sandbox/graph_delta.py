"""Graph delta rounds over versioned collections: snapshot pages, then changes, with opaque state tokens.

Every put/delete stamps a record with the next sequence number. A round's first page fixes `upto`
(the sequence then); pages walk ids in order after the last one served (a keyset, so concurrent
changes never shift a page) and list records changed in (since, upto]. State tokens live in an LRU
cache like Exchange's: an evicted or reset one answers 410, and the client must start over.
"""

from __future__ import annotations

import bisect
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

Match = Callable[[dict[str, Any]], bool]


class SyncStateGone(Exception):
    """The state token is unknown, evicted or reset: `code` is syncStateNotFound or resyncRequired."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(slots=True)
class Record:
    id: str
    seq: int
    data: dict[str, Any] | None  # None: deleted


@dataclass(slots=True, frozen=True)
class Round:
    """Where a round stands: which collection, its query, the change range and the last id served."""

    user: str
    name: str
    query: tuple[tuple[str, str], ...]  # the initial request's parameters, encoded in every token
    since: int | None  # None: the initial (snapshot) round
    upto: int | None  # None until the round's first page is served
    after: str | None
    generation: int


@dataclass(slots=True)
class DeltaPage:
    """One page: items (full records or {"id", "@removed"}) and the next token (skip) or the delta token."""

    items: list[dict[str, Any]]
    skip_token: str | None = None
    delta_token: str | None = None
    round: Round | None = field(default=None, repr=False)


class DeltaStore:
    """Versioned collections keyed by (user, name), thread-safe."""

    def __init__(self, max_sync_states: int = 100_000) -> None:
        self.lock = threading.RLock()
        self.seq = 0
        self.max_sync_states = max_sync_states
        self.collections: dict[tuple[str, str], dict[str, Record]] = {}
        self.generations: dict[str, int] = {}
        self._states: OrderedDict[str, Round] = OrderedDict()

    # -- mutations -----------------------------------------------------------------------------------
    def put(self, user: str, name: str, record_id: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.seq += 1
            self.collections.setdefault((user, name), {})[record_id] = Record(record_id, self.seq, data)

    def delete(self, user: str, name: str, record_id: str) -> bool:
        with self.lock:
            records = self.collections.get((user, name), {})
            if record_id not in records or records[record_id].data is None:
                return False
            self.seq += 1
            records[record_id] = Record(record_id, self.seq, None)
            return True

    def get(self, user: str, name: str, record_id: str) -> dict[str, Any] | None:
        with self.lock:
            record = self.collections.get((user, name), {}).get(record_id)
            return record.data if record is not None else None

    def live(self, user: str, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r.data for r in self.collections.get((user, name), {}).values() if r.data is not None]

    def reset(self, user: str) -> None:
        """Every state token of `user` dies (tenant maintenance): the next use answers resyncRequired."""
        with self.lock:
            self.generations[user] = self.generations.get(user, 0) + 1

    # -- rounds --------------------------------------------------------------------------------------
    def start(self, user: str, name: str, query: tuple[tuple[str, str], ...]) -> Round:
        """The round of an initial request (no token)."""
        with self.lock:
            return Round(user, name, query, None, None, None, self.generations.get(user, 0))

    def resume(self, token: str, user: str) -> Round:
        """The round a skip or delta token stands for; SyncStateGone when it is no longer known."""
        with self.lock:
            state = self._states.get(token)
            if state is None or state.user != user:
                raise SyncStateGone("syncStateNotFound")
            if state.generation != self.generations.get(user, 0):
                raise SyncStateGone("resyncRequired")
            self._states.move_to_end(token)
            return state

    def page(
        self, state: Round, size: int, match: Match, render: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> DeltaPage:
        """Up to `size` items of the round after `state.after`, and the token that follows them."""
        with self.lock:
            if state.upto is None:
                state = replace(state, upto=self.seq)
            upto = state.upto
            assert upto is not None
            records = self.collections.get((state.user, state.name), {})
            ids = sorted(
                i for i, r in records.items() if r.seq <= upto and (state.since is None or r.seq > state.since)
            )
            if state.after is not None:
                ids = ids[bisect.bisect_right(ids, state.after) :]
            items: list[dict[str, Any]] = []
            last: str | None = None
            for index, record_id in enumerate(ids):
                data = records[record_id].data
                if data is not None and match(data):
                    items.append(render(data))
                elif state.since is not None:  # a change that left the view: deleted, or out of range
                    items.append({"id": record_id, "@removed": {"reason": "deleted"}})
                else:
                    continue
                last = record_id
                if len(items) >= size:
                    if index + 1 < len(ids):
                        return DeltaPage(items, skip_token=self._save(replace(state, after=last)), round=state)
                    break
            following = replace(state, since=upto, upto=None, after=None)
            return DeltaPage(items, delta_token=self._save(following), round=state)

    def _save(self, state: Round) -> str:
        token = secrets.token_urlsafe(24)
        self._states[token] = state
        while len(self._states) > self.max_sync_states:
            self._states.popitem(last=False)
        return token

    def forget_states(self) -> None:
        """Drop every state token (the cache was flushed): the next use answers syncStateNotFound."""
        with self.lock:
            self._states.clear()
