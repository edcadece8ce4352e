"""Walking a HubSpot object type in last-modified order with the search API, past its 10,000-result cap.

The search API pages by offset and refuses any offset past 10,000, and an offset shifts when a record
is modified mid-walk. So every query starts at offset 0 and is re-anchored on the last modification
time seen ("modified >= anchor", ascending, 200 at a time) - the cap is never approached and a modified
record simply moves later in the walk. Ties are the catch: the records of the anchor time seen already
are remembered (`seen`, fewer than a page) and skipped; when a whole page shares the anchor time (more
ties than a page), the walk enumerates that time by id ("modified = anchor and hs_object_id > last",
ascending by id), then goes on strictly after it. No record is lost or served twice, no query loops:
each either moves the anchor forward, moves the id forward, or ends the walk.

Pure logic over a `search(body) -> results` callable, so it is tested without HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from connectors.base import JSON, ConnectorError, CursorExpired

SEARCH_LIMIT = 200  # HubSpot's maximum page for search
ID_PROPERTY = "hs_object_id"
Record = Mapping[str, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def is_number(value: str) -> bool:
    """ASCII digits only: str.isdigit() also takes "²" and other digit-like characters int() refuses."""
    return value.isascii() and value.isdigit()


def epoch_ms(value: Any) -> int | None:
    """A HubSpot datetime property (ISO 8601, or epoch milliseconds) as epoch ms; None when unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    if is_number(text):
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when - _EPOCH) // _MS if when.tzinfo is not None else None  # exact: no float rounding


def record_id(record: Record) -> str:
    return str(record.get("id") or "")


@dataclass(frozen=True)
class Scan:
    """Where a walk stands: what is still to come is `modified > anchor` (strict) or `>= anchor` less `seen`."""

    anchor: int = 0
    strict: bool = False
    seen: tuple[str, ...] = ()  # ids modified exactly at `anchor` already served
    ties_after: str | None = None  # in a tie run: last id served at `anchor`; "" when the run starts
    hwm: int = 0  # the latest modification time seen

    def to_json(self) -> JSON:
        return {
            "anchor": self.anchor,
            "strict": self.strict,
            "seen": list(self.seen),
            "ties_after": self.ties_after,
            "hwm": self.hwm,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Scan:
        try:
            ties = raw["ties_after"]
            return cls(
                anchor=int(raw["anchor"]),
                strict=bool(raw["strict"]),
                seen=tuple(str(i) for i in raw["seen"]),
                ties_after=None if ties is None else str(ties),
                hwm=int(raw["hwm"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CursorExpired(f"hubspot scan cursor not understood: {exc!r}") from None

    def query(self, modified: str, properties: Sequence[str], limit: int = SEARCH_LIMIT) -> JSON:
        """The search body for the next step of the walk."""
        if self.ties_after is not None:
            filters: list[JSON] = [{"propertyName": modified, "operator": "EQ", "value": str(self.anchor)}]
            if self.ties_after:
                filters.append({"propertyName": ID_PROPERTY, "operator": "GT", "value": self.ties_after})
            sort = ID_PROPERTY
        else:
            operator = "GT" if self.strict else "GTE"
            filters = [{"propertyName": modified, "operator": operator, "value": str(self.anchor)}]
            sort = modified
        return {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": list(dict.fromkeys([*properties, modified])),
            "limit": limit,
        }


@dataclass
class Step:
    """One search's outcome: the records to emit, the scan after it, and whether the walk has ended."""

    emit: list[Record] = field(default_factory=list)
    scan: Scan = field(default_factory=Scan)
    ended: bool = False


def modified_ms(record: Record, modified: str) -> int:
    """The record's modification time (epoch ms); a record without one is a provider error."""
    props = record.get("properties")
    value = epoch_ms(props.get(modified) if isinstance(props, Mapping) else None)
    if value is None:
        raise ConnectorError(f"hubspot search: record {record_id(record)!r} has no readable {modified}")
    return value


def _range_step(scan: Scan, results: Sequence[Record], modified: str, limit: int) -> Step:
    times = [modified_ms(r, modified) for r in results]
    if any(b < a for a, b in pairwise(times)) or any(
        t < scan.anchor or (scan.strict and t == scan.anchor) for t in times
    ):
        raise ConnectorError("hubspot search: results outside the requested order or range")
    hwm = max([scan.hwm, *times])
    fresh = [r for r, t in zip(results, times, strict=True) if not (t == scan.anchor and record_id(r) in scan.seen)]
    if not results:
        return Step([], replace(scan, hwm=hwm), ended=True)
    last = times[-1]
    if len(results) >= limit and last == scan.anchor and not scan.strict:
        # a whole page at the anchor time: more ties than a page, so enumerate them by id
        return Step([], replace(scan, ties_after="", hwm=hwm))
    at_last = tuple(record_id(r) for r, t in zip(results, times, strict=True) if t == last)
    seen = tuple(dict.fromkeys([*scan.seen, *at_last])) if last == scan.anchor else at_last
    return Step(fresh, Scan(last, False, seen, None, hwm), ended=len(results) < limit)


def _ties_step(scan: Scan, results: Sequence[Record], modified: str, limit: int) -> Step:
    ids = [record_id(r) for r in results]
    numbers = [int(i) if is_number(i) else -1 for i in ids]
    floor = int(scan.ties_after) if scan.ties_after else -1
    off_time = any(modified_ms(r, modified) != scan.anchor for r in results)
    if off_time or any(b <= a for a, b in pairwise([floor, *numbers])):
        raise ConnectorError("hubspot search: tie results out of id order, or not at the anchor time")
    fresh = [r for r in results if record_id(r) not in scan.seen]
    if len(results) < limit:  # every record of the anchor time has been served: go on strictly after it
        return Step(fresh, Scan(scan.anchor, True, (), None, scan.hwm))
    return Step(fresh, replace(scan, ties_after=ids[-1]))


def step(
    scan: Scan,
    search: Callable[[JSON], Sequence[Record]],
    modified: str,
    properties: Sequence[str],
    limit: int = SEARCH_LIMIT,
) -> Step:
    """Run the next search of the walk and say what to emit and where the walk stands after it."""
    results = search(scan.query(modified, properties, limit))
    if scan.ties_after is not None:
        return _ties_step(scan, results, modified, limit)
    return _range_step(scan, results, modified, limit)
