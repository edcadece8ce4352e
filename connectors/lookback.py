"""What an incremental pass's lookback reads again that an earlier page already emitted.

Passes over a modified-since filter start a little before the newest change seen (HubSpot's search index
lags writes; Salesforce transactions commit after they stamp SystemModstamp), so they read again the
records changed in that margin. A record read again with the same id, the same modification time and the
same content is the version already emitted, in a page that committed before this cursor did: skipping it
is safe whatever subset of the margin is remembered, so the memory is capped (a record beyond the cap is
just re-sent). The content counts because a modification time alone is not a version: Salesforce stores
datetimes to the second, so two saves within one second share a SystemModstamp, and the second save is
exactly what the lookback is there to catch. Anything changed since is emitted as usual.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.base import CursorExpired

TAIL_MAX = 1000  # remembered versions per cursor: about 50 kB of JSON at most
Version = tuple[int, str]  # (modification time in epoch ms, content digest)


def digest(record: Mapping[str, Any]) -> str:
    """A short digest of a record's whole content as the provider returned it."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Tail:
    """Versions emitted with a modification time at or after a floor: id -> (epoch ms, content digest)."""

    versions: Mapping[str, Version] = field(default_factory=dict)

    def emitted(self, record_id: str, stamp: int | None, content: str) -> bool:
        """Whether exactly this version of the record (time and content) was emitted already."""
        return stamp is not None and self.versions.get(record_id) == (stamp, content)

    def add(self, seen: Iterable[tuple[str, int | None, str]], floor: int) -> Tail:
        """The tail with `seen` emitted too, less what is older than `floor`; the newest TAIL_MAX kept."""
        merged = dict(self.versions)
        merged.update((i, (s, c)) for i, s, c in seen if i and s is not None)
        kept = sorted(((v, i) for i, v in merged.items() if v[0] >= floor), reverse=True)[:TAIL_MAX]
        return Tail({i: v for v, i in kept})

    def without(self, record_ids: Iterable[str]) -> Tail:
        """The tail less some records (deleted since: their next sighting is news whatever its time)."""
        gone = set(record_ids)
        return Tail({i: v for i, v in self.versions.items() if i not in gone}) if gone & set(self.versions) else self

    def to_json(self) -> dict[str, list[int | str]]:
        return {i: [s, c] for i, (s, c) in self.versions.items()}

    @classmethod
    def from_json(cls, raw: Any) -> Tail:
        """The stored tail (absent: empty, as cursors written before it; a bare time: no content known)."""
        if raw is None:
            return cls()
        try:
            return cls({str(k): _version(v) for k, v in dict(raw).items()})
        except (TypeError, ValueError) as exc:
            raise CursorExpired(f"lookback tail not understood: {exc!r}") from None


def _version(raw: Any) -> Version:
    """[ms, digest] as stored, or a bare ms from a cursor written before digests (matches no content)."""
    if isinstance(raw, list) and len(raw) == 2:
        return int(raw[0]), str(raw[1])
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"not a version: {raw!r}")
    return raw, "?"
