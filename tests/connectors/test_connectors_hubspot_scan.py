"""The HubSpot last-modified walk (connectors.hubspot_scan) against an in-memory search, without HTTP.

The fake search behaves like HubSpot's: filters, one ascending sort, a 200-record page, and ties under
the sort key in an order unrelated to the id (here: shuffled anew on every query).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import JSON, ConnectorError, CursorExpired
from connectors.hubspot_scan import SEARCH_LIMIT, Scan, epoch_ms, step

MOD = "hs_lastmodifieddate"


class FakeSearch:
    """Records (id -> modified ms) searched as HubSpot would; counts queries."""

    def __init__(self, records: dict[int, int], seed: int = 0) -> None:
        self.records = records
        self.rng = random.Random(seed)
        self.queries = 0

    def _match(self, rid: int, flt: JSON) -> bool:
        have = rid if flt["propertyName"] == "hs_object_id" else self.records[rid]
        value = int(flt["value"])
        return {"EQ": have == value, "GT": have > value, "GTE": have >= value}[flt["operator"]]

    def __call__(self, body: JSON) -> list[dict[str, Any]]:
        self.queries += 1
        assert "after" not in body  # the walk never pages by offset
        filters = body["filterGroups"][0]["filters"]
        hits = [rid for rid in self.records if all(self._match(rid, f) for f in filters)]
        self.rng.shuffle(hits)  # ties come back in any order
        sort = body["sorts"][0]["propertyName"]
        hits.sort(key=(lambda r: r) if sort == "hs_object_id" else (lambda r: self.records[r]))
        page = hits[: body["limit"]]
        return [{"id": str(r), "properties": {MOD: str(self.records[r])}} for r in page]


def walk(search: FakeSearch, scan: Scan | None = None, max_steps: int = 10_000) -> tuple[list[str], Scan]:
    scan = scan or Scan()
    served: list[str] = []
    for _ in range(max_steps):
        outcome = step(scan, search, MOD, ["email"])
        served += [r["id"] for r in outcome.emit]
        scan = Scan.from_json(json.loads(json.dumps(outcome.scan.to_json())))  # every step survives storage
        if outcome.ended:
            return served, scan
    raise AssertionError("the walk did not end")


def test_distinct_times_are_walked_once_with_few_queries() -> None:
    search = FakeSearch({i: 1_000 + i * 7 for i in range(1, 1001)})
    served, scan = walk(search)
    assert sorted(served, key=int) == [str(i) for i in range(1, 1001)]
    assert scan.hwm == 1_000 + 1000 * 7
    assert search.queries <= 1000 // (SEARCH_LIMIT - 1) + 2  # one record re-read per query at most


@pytest.mark.parametrize("tie", [150, 199, 200, 201, 450, 1000])
def test_ties_larger_and_smaller_than_a_page(tie: int) -> None:
    records = {i: 5_000 + (i // tie) * 1000 for i in range(1, 2001)}
    search = FakeSearch(records, seed=tie)
    served, _ = walk(search)
    assert sorted(served, key=int) == [str(i) for i in range(1, 2001)]
    assert len(served) == len(set(served))


def test_one_time_for_more_than_ten_thousand_records() -> None:
    records = {i: 42_000 for i in range(1, 12_001)}
    search = FakeSearch(records)
    served, scan = walk(search)
    assert len(served) == len(set(served)) == 12_000
    assert scan.strict and scan.anchor == 42_000
    assert search.queries <= 12_000 // SEARCH_LIMIT + 5  # + entering the tie run, + its empty last page


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.integers(min_value=0, max_value=40), min_size=0, max_size=700),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_any_mix_of_ties_is_served_exactly_once(times: list[int], seed: int) -> None:
    records = {i + 1: t * 1000 for i, t in enumerate(times)}
    served, _ = walk(FakeSearch(records, seed))
    assert sorted(served, key=int) == [str(i) for i in records]


def test_records_modified_mid_walk_come_again_and_none_is_lost() -> None:
    records = {i: 1_000 + (i // 50) * 10 for i in range(1, 3001)}
    search = FakeSearch(records, seed=3)
    scan, served = Scan(), []
    rng = random.Random(9)
    for _ in range(1000):
        outcome = step(scan, search, MOD, [])
        served += [r["id"] for r in outcome.emit]
        scan = outcome.scan
        for rid in rng.sample(sorted(records), 5):  # someone edits five records between two queries
            records[rid] = max(records.values()) + 1
        if outcome.ended:
            break
    assert set(served) == {str(i) for i in records}


def test_a_new_run_from_the_high_water_mark_sees_only_later_changes() -> None:
    records = {i: 1_000 + i for i in range(1, 501)}
    _, scan = walk(FakeSearch(records))
    records[7] = 10_000
    records[501] = 10_000
    served, _ = walk(FakeSearch(records), Scan(anchor=scan.hwm, hwm=scan.hwm))
    assert set(served) == {"7", "501", "500"}  # 500 sits at the high-water mark itself


def test_results_out_of_order_are_an_error_not_a_loop() -> None:
    def backwards(body: JSON) -> Sequence[dict[str, Any]]:
        return [{"id": str(i), "properties": {MOD: str(1000 - i)}} for i in range(1, 201)]

    with pytest.raises(ConnectorError, match="order"):
        step(Scan(), backwards, MOD, [])


def test_a_tie_run_that_does_not_move_is_an_error() -> None:
    def stuck(body: JSON) -> Sequence[dict[str, Any]]:
        return [{"id": str(i), "properties": {MOD: "5"}} for i in range(1, 201)]

    scan = Scan(anchor=5, ties_after="200")
    with pytest.raises(ConnectorError):
        step(scan, stuck, MOD, [])


def test_cursor_json_is_validated() -> None:
    with pytest.raises(CursorExpired):
        Scan.from_json({"anchor": "x"})
    scan = Scan(5, True, ("1", "2"), "9", 7)
    assert Scan.from_json(json.loads(json.dumps(scan.to_json()))) == scan


def test_epoch_ms_reads_iso_and_epoch_exactly() -> None:
    assert epoch_ms("2026-11-01T12:00:00.123Z") == 1793534400123
    assert epoch_ms("1793534400123") == 1793534400123
    assert epoch_ms("yesterday") is None
    assert epoch_ms(None) is None
