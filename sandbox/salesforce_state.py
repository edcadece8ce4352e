"""What the Salesforce emulator remembers: the org's records, the Recycle Bin, query locators, knobs, counters.

Its clock runs from the world's `now` (so generated data keeps its age whatever the wall clock says);
`advance()` moves it on for tests. Mutations stamp SystemModstamp strictly increasing, as the
connector's incremental queries rely on.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.faults import FaultInjector
from sandbox.salesforce_auth import SalesforceAuth
from sandbox.salesforce_data import ORG_ID, OrgData, Record, generate_org
from sandbox.salesforce_query import render, select
from sandbox.salesforce_schema import (
    CREATE_ONLY,
    OBJECTS,
    RESTRICTED_PICKLISTS,
    canonical_field,
    canonical_object,
    object_of_id,
)
from sandbox.salesforce_soql import SoqlError, parse
from sandbox.stats import Stats
from sandbox.world import DEFAULT_NOW, World

KNOBS: dict[str, type] = {
    "session_ttl": int,
    "code_ttl": int,
    "rotate_refresh_tokens": bool,
    "daily_api_limit": int,
    "deleted_window_days": float,
    "locator_ttl": float,
    "deny_consent": bool,
    "repeat_next_records_url": bool,  # a broken server: queryMore answers with the URL it was asked for
}
MIN_BATCH, MAX_BATCH = 200, 2000
_NAMED = ("Contact", "Lead", "User")


@dataclass(slots=True)
class Locator:
    """A server-side query cursor: the rendered rows, how far the client got, when it was last used."""

    rows: list[Record]
    endpoint: str  # "query" or "queryAll"
    sobject: str
    touched: float


@dataclass(frozen=True, slots=True)
class QueryPage:
    rows: list[Record]
    total: int
    next_locator: str | None  # "<locator>-<offset>" when more rows remain


class SalesforceState:
    """In-process handle on the Salesforce emulator; every public method is thread-safe."""

    def __init__(self, world: World | None = None, *, seed: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.world = world
        self._epoch = clock()
        self._offset = timedelta()
        self._origin = world.now if world is not None else DEFAULT_NOW
        self.data: OrgData = generate_org(world) if world is not None else OrgData()
        self.auth = SalesforceAuth(ORG_ID, clock)
        self.faults = FaultInjector(seed)
        self.stats = Stats()
        self.object_calls: Counter[str] = Counter()  # "queryAll:Contact", "query_more:Contact", "deleted:Contact"
        self.api_used = 0
        self.daily_api_limit = 100_000
        self.deleted_window_days = 15.0
        self.locator_ttl = 900.0
        self.deny_consent = False
        self.repeat_next_records_url = False
        self.purged_until: datetime | None = None  # the Recycle Bin was emptied up to here
        self.locators: dict[str, Locator] = {}
        self._last_stamp = max(
            (r["SystemModstamp"] for rows in self.data.records.values() for r in rows.values()), default=self._origin
        )

    # -- time and knobs ----------------------------------------------------------------------------
    def now(self) -> datetime:
        """The org's current time: the world's `now` plus the wall time since start, plus `advance()`."""
        return self._origin + timedelta(seconds=self.clock() - self._epoch) + self._offset

    def advance(self, **delta: float) -> None:
        """Move the org's clock forward (timedelta keywords), e.g. to age cursors past the window."""
        with self.lock:
            self._offset += timedelta(**delta)

    def _stamp(self) -> datetime:
        now = self.now()
        now = now.replace(microsecond=(now.microsecond // 1000) * 1000)
        self._last_stamp = max(now, self._last_stamp + timedelta(milliseconds=1))
        return self._last_stamp

    def configure(self, **knobs: Any) -> None:
        """Set knobs by name (see KNOBS); session and code lifetimes and rotation live on the auth side."""
        with self.lock:
            for name, value in knobs.items():
                kind = KNOBS.get(name)
                if kind is None:
                    raise ValueError(f"unknown knob {name!r}; known: {sorted(KNOBS)}")
                target = self.auth if name in ("session_ttl", "code_ttl", "rotate_refresh_tokens") else self
                setattr(target, name, kind(value))

    def knobs(self) -> dict[str, Any]:
        with self.lock:
            return {n: getattr(self.auth if hasattr(self.auth, n) else self, n) for n in KNOBS}

    # -- records -------------------------------------------------------------------------------------
    def users_by_email(self) -> dict[str, str]:
        with self.lock:
            return {str(u["Email"]).lower(): uid for uid, u in self.data.records["User"].items() if u.get("Email")}

    def record(self, record_id: str) -> Record | None:
        """The record with this id (live or in the Recycle Bin), or None."""
        sobject = object_of_id(record_id)
        return self.data.records[sobject].get(record_id) if sobject else None

    def _live(self, record_id: str) -> Record | None:
        found = self.record(record_id)
        return found if found is not None and not found.get("IsDeleted") else None

    def _children(self, child: str, lookup: str, parent_id: str) -> list[Record]:
        rows = [r for r in self.data.records[child].values() if r.get(lookup) == parent_id and not r.get("IsDeleted")]
        return sorted(rows, key=lambda r: str(r["Id"]))

    def _purge(self) -> None:
        """Drop deleted records older than the Recycle Bin keeps them (or emptied by `empty_recycle_bin`)."""
        limit = self.now() - timedelta(days=self.deleted_window_days)
        if self.purged_until is not None:
            limit = max(limit, self.purged_until)
        for record_id, when in list(self.data.deleted_at.items()):
            if when < limit:
                sobject = object_of_id(record_id)
                if sobject is not None:
                    self.data.records[sobject].pop(record_id, None)
                del self.data.deleted_at[record_id]

    def _fields(self, sobject: str, fields: Mapping[str, Any], *, creating: bool = False) -> Record:
        out: Record = {}
        for name, value in fields.items():
            canonical = canonical_field(sobject, name)
            if canonical is None or canonical in ("Id", "IsDeleted", "SystemModstamp", "CreatedDate"):
                raise ValueError(f"{sobject}.{name} cannot be set")
            if not creating and (sobject, canonical) in CREATE_ONLY:
                raise ValueError(f"{sobject}.{canonical} cannot be updated once the record exists")
            allowed = RESTRICTED_PICKLISTS.get((sobject, canonical))
            if allowed is not None and value is not None and value not in allowed:
                raise ValueError(f"{sobject}.{canonical}: bad value for restricted picklist field: {value!r}")
            out[canonical] = value
        return out

    def create(self, sobject: str, fields: Mapping[str, Any]) -> str:
        """Insert a record (id and audit fields assigned); returns its id."""
        return self.create_many(sobject, [fields])[0]

    def create_many(self, sobject: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert records in one go (bulk loads for paging tests)."""
        canonical = canonical_object(sobject)
        if canonical is None:
            raise ValueError(f"unknown sObject {sobject!r}")
        with self.lock:
            ids: list[str] = []
            for fields in rows:
                record: Record = {name: None for name in OBJECTS[canonical]} | self._fields(
                    canonical, fields, creating=True
                )
                record_id = record["Id"] = self.data.new_id(canonical)
                if canonical != "User":
                    record["IsDeleted"] = False
                stamp = self._stamp()
                record["CreatedDate"] = record["LastModifiedDate"] = record["SystemModstamp"] = stamp
                self._name(canonical, record)
                self.data.records[canonical][record_id] = record
                ids.append(record_id)
            return ids

    def _name(self, sobject: str, record: Record) -> None:
        if sobject in _NAMED and record.get("LastName") is not None:
            record["Name"] = " ".join(str(p) for p in (record.get("FirstName"), record["LastName"]) if p)

    def _touch(self, record: Record) -> None:
        record["LastModifiedDate"] = record["SystemModstamp"] = self._stamp()

    def update(self, record_id: str, fields: Mapping[str, Any]) -> None:
        """Change fields of a live record (KeyError when absent)."""
        with self.lock:
            record = self._live(record_id)
            if record is None:
                raise KeyError(record_id)
            sobject = object_of_id(record_id) or ""
            record.update(self._fields(sobject, fields))
            self._name(sobject, record)
            self._touch(record)
            if sobject == "EventRelation" and record.get("EventId"):
                self._touch_id(str(record["EventId"]))

    def _touch_id(self, record_id: str) -> None:
        record = self._live(record_id)
        if record is not None:
            self._touch(record)

    def delete(self, record_id: str) -> None:
        """Move a live record to the Recycle Bin (IsDeleted = true)."""
        with self.lock:
            record = self._live(record_id)
            if record is None or "IsDeleted" not in record:
                raise KeyError(record_id)
            record["IsDeleted"] = True
            self._touch(record)
            self.data.deleted_at[record_id] = record["SystemModstamp"]

    def merge(self, master_id: str, loser_ids: Iterable[str]) -> None:
        """Merge losers into the master: losers deleted with MasterRecordId, their activities re-parented."""
        with self.lock:
            master = self._live(master_id)
            if master is None:
                raise KeyError(master_id)
            losers = [lid for lid in loser_ids]
            for loser_id in losers:
                loser = self._live(loser_id)
                if loser is None or object_of_id(loser_id) != object_of_id(master_id) or loser_id == master_id:
                    raise ValueError(f"cannot merge {loser_id} into {master_id}")
                self._reparent(loser_id, master_id)
                loser["MasterRecordId"] = master_id
                self.delete(loser_id)
            self._touch(master)

    def _reparent(self, old: str, new: str) -> None:
        for sobject, fields in (("Task", ("WhoId", "WhatId")), ("Event", ("WhoId", "WhatId")),
                                ("EventRelation", ("RelationId",)), ("Contact", ("AccountId",))):  # fmt: skip
            for record in self.data.records[sobject].values():
                hit = [f for f in fields if record.get(f) == old]
                if hit and not record.get("IsDeleted"):
                    record.update(dict.fromkeys(hit, new))
                    self._touch(record)

    def empty_recycle_bin(self) -> int:
        """Hard-delete everything in the Recycle Bin now (queryAll stops returning it)."""
        with self.lock:
            self.purged_until = self.now()
            before = len(self.data.deleted_at)
            self._purge()
            return before - len(self.data.deleted_at)

    def live(self, sobject: str) -> list[Record]:
        """A snapshot of the live records of an object, by id."""
        with self.lock:
            return [dict(r) for _, r in sorted(self.data.records[sobject].items()) if not r.get("IsDeleted")]

    # -- queries -------------------------------------------------------------------------------------
    def query(self, soql: str, *, include_deleted: bool, batch_size: int, base: str) -> tuple[str, QueryPage]:
        """Run SOQL; returns the object queried and the first page (a locator remembers the rest)."""
        plan = parse(soql)
        with self.lock:
            self._purge()
            pool = [r for r in self.data.records[plan.sobject].values() if include_deleted or not r.get("IsDeleted")]
            found = select(plan, pool, self._live)
            rows = [render(plan, r, self._live, self._children, base) for r in found]
            locator = Locator(rows, "queryAll" if include_deleted else "query", plan.sobject, self.clock())
            return plan.sobject, self._page(self._new_locator(locator), locator, 0, batch_size)

    def _new_locator(self, locator: Locator) -> str:
        name = f"01gSb{secrets.token_hex(5).upper()}AAA"
        self.locators[name] = locator
        return name

    def _page(self, name: str, locator: Locator, offset: int, batch_size: int) -> QueryPage:
        size = min(max(batch_size, MIN_BATCH), MAX_BATCH)
        end = offset + size
        if end >= len(locator.rows):
            self.locators.pop(name, None)
            return QueryPage(locator.rows[offset:], len(locator.rows), None)
        locator.touched = self.clock()
        return QueryPage(locator.rows[offset:end], len(locator.rows), f"{name}-{end}")

    def query_more(self, endpoint: str, token: str, batch_size: int) -> tuple[str, QueryPage]:
        """The page at "<locator>-<offset>"; SoqlError INVALID_QUERY_LOCATOR when unknown or expired."""
        name, _, offset_text = token.rpartition("-")
        with self.lock:
            locator = self.locators.get(name)
            if locator is not None and self.clock() - locator.touched > self.locator_ttl:
                del self.locators[name]
                locator = None
            if locator is None or locator.endpoint != endpoint or not offset_text.isdigit():
                raise SoqlError("INVALID_QUERY_LOCATOR", "invalid query locator")
            page = self._page(name, locator, int(offset_text), batch_size)
            if self.repeat_next_records_url and page.next_locator is not None:
                page = QueryPage(page.rows, page.total, token)
            return locator.sobject, page

    def expire_locators(self) -> int:
        """Forget every open query locator (as after 15 minutes idle)."""
        with self.lock:
            n = len(self.locators)
            self.locators.clear()
            return n

    def deleted(self, sobject: str, start: datetime, end: datetime) -> dict[str, Any]:
        """sObject Get Deleted over [start, end] (seconds ignored); SoqlError INVALID_REPLICATION_DATE."""
        start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)
        with self.lock:
            self._purge()
            now = self.now()
            earliest = now - timedelta(days=self.deleted_window_days)
            if self.purged_until is not None:
                earliest = max(earliest, self.purged_until)
            if end <= start:
                raise SoqlError("INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
            if start < earliest.replace(second=0, microsecond=0) - timedelta(minutes=1):
                raise SoqlError("INVALID_REPLICATION_DATE", "startDate is before the earliest date available")
            hits = sorted(
                (when, rid) for rid, when in self.data.deleted_at.items()
                if object_of_id(rid) == sobject and start <= when <= end
            )  # fmt: skip
            return {
                "deletedRecords": [{"id": rid, "deletedDate": when} for when, rid in hits],
                "earliestDateAvailable": earliest,
                "latestDateCovered": min(end, now.replace(second=0, microsecond=0)),
            }

    # -- counters ------------------------------------------------------------------------------------
    def count_api(self, kind: str, sobject: str | None) -> None:
        with self.lock:
            self.api_used += 1
            if sobject:
                self.object_calls[f"{kind}:{sobject}"] += 1

    def stats_snapshot(self) -> dict[str, Any]:
        snap = self.stats.snapshot()
        snap["faults"] = self.faults.snapshot()
        with self.lock:
            snap["object_calls"] = dict(self.object_calls)
            snap["api_usage"] = {"used": self.api_used, "limit": self.daily_api_limit}
            snap["token_calls"] = dict(self.auth.calls)
            snap["open_locators"] = len(self.locators)
        return snap

    def reset_stats(self) -> None:
        with self.lock:
            self.stats.reset()
            self.faults.reset_counters()
            self.object_calls.clear()
            self.auth.calls.clear()

    def summary(self) -> dict[str, dict[str, int]]:
        """Live and deleted record counts per object."""
        with self.lock:
            return {
                sobject: {
                    "live": sum(1 for r in rows.values() if not r.get("IsDeleted")),
                    "deleted": sum(1 for r in rows.values() if r.get("IsDeleted")),
                }
                for sobject, rows in self.data.records.items()
            }


def utc(value: datetime) -> datetime:
    """An aware UTC datetime."""
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
