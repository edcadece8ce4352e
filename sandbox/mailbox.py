"""One live Gmail mailbox: messages, newest-first paging order, and the history log behind history.list."""

from __future__ import annotations

import bisect
import dataclasses
import random
import zlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from sandbox.world import MailMessage, new_gmail_id

HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
HIDDEN_LABELS = frozenset({"SPAM", "TRASH"})

OrderKey = tuple[int, str]  # (-internal_date_ms, id): ascending == newest first
Predicate = Callable[["Entry"], bool]


@dataclass(slots=True)
class Entry:
    """A stored message with its live labels and the history id of its last change."""

    msg: MailMessage
    label_ids: tuple[str, ...]
    history_id: int

    @property
    def key(self) -> OrderKey:
        return (-self.msg.internal_date_ms, self.msg.id)


@dataclass(slots=True, frozen=True)
class HistoryRecord:
    """One change; `label_ids` is the message's labels after it, `changed` the labels added/removed."""

    id: int
    type: str
    message_id: str
    thread_id: str
    label_ids: tuple[str, ...]
    changed: tuple[str, ...] = ()


class Mailbox:
    """Not thread-safe by itself: GoogleState serialises access with its lock."""

    def __init__(self, email: str, messages: Iterable[MailMessage] = ()) -> None:
        self.email = email
        seed = zlib.crc32(email.lower().encode())
        self._rng = random.Random(seed)
        self.history_id = 10_000 + seed % 90_000
        self.floor = 0
        self.entries: dict[str, Entry] = {}
        self.history: list[HistoryRecord] = []
        self._history_ids: list[int] = []
        self._order: list[OrderKey] | None = None
        self._count_cache: dict[tuple[tuple[str, ...], bool], int] = {}
        self._threads_total: int | None = None
        self.rfc_threads: dict[str, str] = {}
        self.taken: set[str] = set()
        for msg in sorted(messages, key=lambda m: (m.internal_date_ms, m.id)):
            self.add(msg)

    # -- history -----------------------------------------------------------------------------------
    def _record(self, kind: str, entry: Entry, changed: tuple[str, ...] = ()) -> None:
        self.history_id += self._rng.randint(1, 4)  # ids grow with gaps, like Gmail's
        entry.history_id = self.history_id
        rec = HistoryRecord(self.history_id, kind, entry.msg.id, entry.msg.thread_id, entry.label_ids, changed)
        self.history.append(rec)
        self._history_ids.append(rec.id)

    def trim_history(self, keep: int | None) -> None:
        """Keep only the newest `keep` records (None: keep all); older start ids then get 404."""
        if keep is None or len(self.history) <= keep:
            return
        drop = len(self.history) - keep
        self.floor = max(self.floor, self.history[drop - 1].id)
        del self.history[:drop]
        del self._history_ids[:drop]

    def expire_history(self) -> None:
        """Forget every record: any startHistoryId below the current one now gets 404."""
        self.history.clear()
        self._history_ids.clear()
        self.floor = self.history_id

    def history_valid(self, start: int) -> bool:
        return start >= self.floor

    def history_after(
        self, start: int, types: Collection[str] | None, label_id: str | None, limit: int
    ) -> tuple[list[HistoryRecord], bool]:
        """Records with id > start matching the filters, at most `limit`, and whether more remain."""
        i = bisect.bisect_right(self._history_ids, start)
        out: list[HistoryRecord] = []
        for rec in self.history[i:]:
            if types and rec.type not in types:
                continue
            if label_id is not None and label_id not in rec.label_ids and label_id not in rec.changed:
                continue
            if len(out) == limit:
                return out, True
            out.append(rec)
        return out, False

    # -- mutations ---------------------------------------------------------------------------------
    def _dirty(self) -> None:
        self._order = None
        self._count_cache.clear()
        self._threads_total = None

    def add(self, msg: MailMessage) -> Entry:
        """Store a message (fresh id / thread id assigned when missing or taken) and log messageAdded."""
        if not msg.id or msg.id in self.taken:
            msg = dataclasses.replace(msg, id=new_gmail_id(msg.internal_date_ms, self._rng, self.taken))
        else:
            self.taken.add(msg.id)
        if not msg.thread_id:
            thread = None
            refs = " ".join(msg.header_values("In-Reply-To") + msg.header_values("References")).split()
            for ref in reversed(refs):
                thread = self.rfc_threads.get(ref)
                if thread is not None:
                    break
            msg = dataclasses.replace(msg, thread_id=thread or msg.id)
        rfc_id = msg.message_id
        if rfc_id:
            self.rfc_threads.setdefault(rfc_id.strip(), msg.thread_id)
        entry = Entry(msg, msg.label_ids, 0)
        self.entries[msg.id] = entry
        self._record("messageAdded", entry)
        self._dirty()
        return entry

    def delete(self, message_id: str) -> bool:
        entry = self.entries.pop(message_id, None)
        if entry is None:
            return False
        self._record("messageDeleted", entry)
        self._dirty()
        return True

    def modify(self, message_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> Entry | None:
        """Add/remove labels, logging labelAdded/labelRemoved for actual changes."""
        entry = self.entries.get(message_id)
        if entry is None:
            return None
        current = list(entry.label_ids)
        added = tuple(lab for lab in dict.fromkeys(add) if lab not in current)
        removed = tuple(lab for lab in dict.fromkeys(remove) if lab in current and lab not in added)
        if added:
            current.extend(added)
            entry.label_ids = tuple(current)
            self._record("labelAdded", entry, added)
        if removed:
            entry.label_ids = tuple(lab for lab in entry.label_ids if lab not in removed)
            self._record("labelRemoved", entry, removed)
        if added or removed:
            self._count_cache.clear()
        return entry

    # -- reads ---------------------------------------------------------------------------------------
    def order(self) -> list[OrderKey]:
        if self._order is None:
            self._order = sorted(e.key for e in self.entries.values())
        return self._order

    @staticmethod
    def _visible(
        entry: Entry, label_ids: tuple[str, ...], include_spam_trash: bool, predicate: Predicate | None
    ) -> bool:
        labels = entry.label_ids
        if not include_spam_trash and ("SPAM" in labels or "TRASH" in labels):
            return False
        if not all(lab in labels for lab in label_ids):
            return False
        return predicate is None or predicate(entry)

    def page(
        self,
        label_ids: tuple[str, ...],
        include_spam_trash: bool,
        after: OrderKey | None,
        limit: int,
        predicate: Predicate | None = None,
    ) -> tuple[list[Entry], OrderKey | None]:
        """Up to `limit` visible entries newest first after the `after` key, and the key to resume from."""
        order = self.order()
        i = bisect.bisect_right(order, after) if after is not None else 0
        out: list[Entry] = []
        n = len(order)
        while i < n:
            entry = self.entries[order[i][1]]
            i += 1
            if self._visible(entry, label_ids, include_spam_trash, predicate):
                out.append(entry)
                if len(out) == limit:
                    break
        if len(out) < limit:
            return out, None
        # only hand out a next page when something visible remains
        while i < n:
            if self._visible(self.entries[order[i][1]], label_ids, include_spam_trash, predicate):
                return out, out[-1].key
            i += 1
        return out, None

    def count(
        self,
        label_ids: tuple[str, ...],
        include_spam_trash: bool,
        predicate: Predicate | None = None,
        cache_key: str = "",
    ) -> int:
        """How many visible entries match (cached per filter until the next mutation)."""
        key = ((*label_ids, cache_key), include_spam_trash)
        cached = self._count_cache.get(key)
        if cached is None:
            cached = sum(1 for e in self.entries.values() if self._visible(e, label_ids, include_spam_trash, predicate))
            self._count_cache[key] = cached
        return cached

    def threads_total(self) -> int:
        if self._threads_total is None:
            self._threads_total = len({e.msg.thread_id for e in self.entries.values()})
        return self._threads_total
