"""What an incremental pass's lookback reads again that an earlier page already emitted.

Passes over a modified-since filter start a little before the newest change seen (HubSpot's search index
lags writes; Salesforce transactions commit after they stamp SystemModstamp), so they read again the
records changed in that margin. A record read again with the same id and the same modification time is
the version already emitted, in a page that committed before this cursor did: skipping it is safe whatever
subset of the margin is remembered, so the memory is capped (a record beyond the cap is just re-sent).
A record changed since has a new modification time and is emitted as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.base import CursorExpired

TAIL_MAX = 1000  # remembered (id, time) pairs per cursor: about 30 kB of JSON at most


@dataclass(frozen=True)
class Tail:
    """Records emitted with a modification time at or after a floor: id -> epoch milliseconds."""

    stamps: Mapping[str, int] = field(default_factory=dict)

    def emitted(self, record_id: str, stamp: int | None) -> bool:
        """Whether exactly this version of the record was emitted already."""
        return stamp is not None and self.stamps.get(record_id) == stamp

    def add(self, seen: Iterable[tuple[str, int | None]], floor: int) -> Tail:
        """The tail with `seen` emitted too, less what is older than `floor`; the newest TAIL_MAX kept."""
        merged = dict(self.stamps)
        merged.update((i, s) for i, s in seen if i and s is not None)
        kept = sorted(((s, i) for i, s in merged.items() if s >= floor), reverse=True)[:TAIL_MAX]
        return Tail({i: s for s, i in kept})

    def without(self, record_ids: Iterable[str]) -> Tail:
        """The tail less some records (deleted since: their next sighting is news whatever its time)."""
        gone = set(record_ids)
        return Tail({i: s for i, s in self.stamps.items() if i not in gone}) if gone & set(self.stamps) else self

    def to_json(self) -> dict[str, int]:
        return dict(self.stamps)

    @classmethod
    def from_json(cls, raw: Any) -> Tail:
        """The stored tail (absent: empty, as cursors written before it)."""
        if raw is None:
            return cls()
        try:
            return cls({str(k): int(v) for k, v in dict(raw).items()})
        except (TypeError, ValueError) as exc:
            raise CursorExpired(f"lookback tail not understood: {exc!r}") from None
