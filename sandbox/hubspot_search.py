"""CRM search semantics: filter groups (OR of ANDs), one sort, offset paging capped at 10,000 results.

Ties under the sort key come back in a stable but id-unrelated order (a multiplicative hash of the id), as HubSpot
promises nothing about them: a client that pages by "last id seen" within a tie is caught here.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sandbox.hubspot_data import CrmRecord

MAX_LIMIT = 200
MAX_RESULTS = 10_000
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
OPERATORS = frozenset(
    {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"}
)
Key = tuple[int, float, str]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SearchError(ValueError):
    """A request HubSpot answers with 400 VALIDATION_ERROR."""


@lru_cache(maxsize=131_072)  # the same timestamps are compared on every query of a walk
def comparable(value: str) -> Key:
    """Numbers and datetimes compare as numbers (epoch ms), anything else as lower-case text."""
    text = value.strip()
    try:
        return (0, float(text), "")
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return (1, 0.0, text.lower())
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (0, float((when - _EPOCH) // timedelta(milliseconds=1)), "")  # whole ms: EQ must hold exactly


def property_value(record: CrmRecord, name: str) -> str | None:
    if name == "hs_object_id":
        return str(record.id)
    return record.properties.get(name)


_COMPARE: dict[str, Callable[[Key, Key], bool]] = {
    "EQ": operator.eq,
    "NEQ": operator.ne,
    "LT": operator.lt,
    "LTE": operator.le,
    "GT": operator.gt,
    "GTE": operator.ge,
}


@dataclass(frozen=True)
class Filter:
    """One filter: property, operator and its value(s) (kept as comparable keys)."""

    prop: str
    operator: str
    values: tuple[Key, ...]

    def matches(self, record: CrmRecord) -> bool:
        raw = property_value(record, self.prop)
        if self.operator == "HAS_PROPERTY":
            return raw not in (None, "")
        if self.operator == "NOT_HAS_PROPERTY":
            return raw in (None, "")
        if raw in (None, ""):
            return self.operator in ("NEQ", "NOT_IN")
        have = comparable(str(raw))
        compare = _COMPARE.get(self.operator)
        if compare is not None:
            return compare(have, self.values[0])
        if self.operator == "BETWEEN":
            return self.values[0] <= have <= self.values[1]
        return (have in self.values) == (self.operator == "IN")


@dataclass(frozen=True)
class SearchRequest:
    """A validated search body."""

    groups: tuple[tuple[Filter, ...], ...]
    sort: str | None
    descending: bool
    properties: tuple[str, ...] | None
    limit: int
    offset: int


def _filter(raw: Any) -> Filter:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("propertyName"), str):
        raise SearchError("Each filter needs a propertyName")
    operator = str(raw.get("operator", "EQ"))
    if operator not in OPERATORS:
        raise SearchError(f"Unknown operator {operator!r}")
    if operator in ("IN", "NOT_IN"):
        values = tuple(str(v) for v in raw.get("values") or ())
    elif operator == "BETWEEN":
        values = (str(raw.get("value")), str(raw.get("highValue")))
    elif operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        values = ()
    else:
        if raw.get("value") is None:
            raise SearchError(f"Operator {operator} needs a value")
        values = (str(raw["value"]),)
    return Filter(str(raw["propertyName"]), operator, tuple(comparable(v) for v in values))


def _sort(raw: Any) -> tuple[str | None, bool]:
    sorts = raw or []
    if not isinstance(sorts, list):
        raise SearchError("sorts must be a list")
    if len(sorts) > 1:
        raise SearchError("Only one sort is allowed")
    if not sorts:
        return None, False
    sort = sorts[0]
    if isinstance(sort, str):  # the legacy "prop" / "-prop" spelling
        return sort.lstrip("-"), sort.startswith("-")
    if isinstance(sort, Mapping) and isinstance(sort.get("propertyName"), str):
        return str(sort["propertyName"]), str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
    raise SearchError("A sort needs a propertyName")


def parse_request(body: Any) -> SearchRequest:
    """Validate a search body as HubSpot does (limits on groups, filters, page size and depth)."""
    if not isinstance(body, Mapping):
        raise SearchError("Invalid input JSON")
    groups_raw = body.get("filterGroups") or []
    if not isinstance(groups_raw, list) or len(groups_raw) > MAX_GROUPS:
        raise SearchError(f"At most {MAX_GROUPS} filterGroups are allowed")
    groups = []
    for group in groups_raw:
        filters = group.get("filters") if isinstance(group, Mapping) else None
        if not isinstance(filters, list) or not filters or len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(f"Each filterGroup needs 1 to {MAX_FILTERS_PER_GROUP} filters")
        groups.append(tuple(_filter(f) for f in filters))
    if sum(len(g) for g in groups) > MAX_FILTERS:
        raise SearchError(f"At most {MAX_FILTERS} filters are allowed")
    try:
        limit = int(body.get("limit") or 10)
        offset = int(body.get("after") or 0)
    except (TypeError, ValueError):
        raise SearchError("limit and after must be integers") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0 or offset >= MAX_RESULTS:
        raise SearchError(f"The search API returns at most {MAX_RESULTS} results; after={offset} is past that")
    sort, descending = _sort(body.get("sorts"))
    props = body.get("properties")
    properties = tuple(str(p) for p in props) if isinstance(props, list) else None
    return SearchRequest(tuple(groups), sort, descending, properties, limit, offset)


def _order(request: SearchRequest) -> Callable[[CrmRecord], tuple[int, Key, int]]:
    def key(record: CrmRecord) -> tuple[int, Key, int]:
        tie = (record.id * 2_654_435_761) % 4_294_967_296  # a fixed shuffle of ids (Knuth's multiplier)
        if request.sort is None:
            return (0, (0, float(record.id), ""), tie)
        value = property_value(record, request.sort)
        missing = 1 if value in (None, "") else 0
        return (missing, comparable(str(value)) if not missing else (0, 0.0, ""), tie)

    return key


def run_search(records: Iterable[CrmRecord], request: SearchRequest) -> tuple[int, list[CrmRecord], str | None]:
    """(total, this page, the next `after` or None); archived records are never searched."""
    groups = request.groups
    if len(groups) == 1 and len(groups[0]) == 1:  # the common case, without the generator overhead
        only = groups[0][0]
        hits = [r for r in records if not r.archived and only.matches(r)]
    else:
        hits = [
            r for r in records if not r.archived and (not groups or any(all(f.matches(r) for f in g) for g in groups))
        ]
    total = len(hits)
    key = _order(request)
    if request.descending:
        hits.sort(key=key, reverse=True)
        hits.sort(key=lambda r: key(r)[0])  # missing values stay last, ties keep their hash order
    else:
        hits = heapq.nsmallest(request.offset + request.limit, hits, key=key)
    page = hits[request.offset : request.offset + request.limit]
    end = request.offset + len(page)
    return total, page, str(end) if end < total else None
