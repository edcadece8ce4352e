"""connectors.lookback: what a lookback may skip is exactly a version emitted before, within the margin."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import CursorExpired
from connectors.lookback import TAIL_MAX, Tail, digest

ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=6)
stamps = st.integers(min_value=0, max_value=10_000)
contents = st.sampled_from(["a", "b"])
seen_versions = st.lists(st.tuples(ids, stamps, contents), max_size=40)


@given(seen_versions, seen_versions, stamps)
def test_a_version_is_skipped_only_if_it_was_added_at_or_after_the_floor(
    before: list[tuple[str, int, str]], now: list[tuple[str, int, str]], floor: int
) -> None:
    tail = Tail().add(before, 0).add(now, floor)
    last = {i: (s, c) for i, s, c in [*before, *now]}  # the later of two versions of one id wins
    for record_id, stamp, content in [*before, *now]:
        expected = last[record_id] == (stamp, content) and stamp >= floor
        assert tail.emitted(record_id, stamp, content) == expected


def test_a_second_save_within_the_same_second_is_not_skipped() -> None:
    """Salesforce stores SystemModstamp to the second: the same time with new content is a new version."""
    first = {"Id": "003A", "SystemModstamp": "2026-11-25T10:00:00.000+0000", "Email": "a@x.test"}
    second = first | {"Email": "b@x.test"}
    tail = Tail().add([("003A", 1_000, digest(first))], 0)
    assert tail.emitted("003A", 1_000, digest(first))
    assert not tail.emitted("003A", 1_000, digest(second))


def test_the_digest_ignores_key_order_but_not_values() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


@given(seen_versions)
def test_a_tail_survives_its_json_round_trip(seen: list[tuple[str, int, str]]) -> None:
    tail = Tail().add(seen, 0)
    assert Tail.from_json(json.loads(json.dumps(tail.to_json()))) == tail


def test_a_tail_written_before_digests_skips_nothing() -> None:
    old = Tail.from_json({"003A": 1_000})
    assert not old.emitted("003A", 1_000, digest({"Id": "003A"})) and not old.emitted("003A", 1_000, "")


def test_the_newest_versions_are_kept_past_the_cap_and_nothing_unknown_is_skipped() -> None:
    tail = Tail().add(((str(i), i, "c") for i in range(TAIL_MAX + 10)), 0)
    assert len(tail.versions) == TAIL_MAX and tail.emitted(str(TAIL_MAX + 9), TAIL_MAX + 9, "c")
    assert not tail.emitted("0", 0, "c") and not tail.emitted("x", None, "c") and not Tail.from_json(None).versions


@pytest.mark.parametrize("raw", [{"1": "soon"}, {"1": [1]}, {"1": True}, ["1"]])
def test_a_tail_not_understood_expires_the_cursor(raw: object) -> None:
    with pytest.raises(CursorExpired):
        Tail.from_json(raw)


@given(seen_versions, st.sets(ids, max_size=5))
def test_a_record_left_out_is_never_skipped_again(seen: list[tuple[str, int, str]], gone: set[str]) -> None:
    tail = Tail().add(seen, 0).without(gone)
    last = {i: (s, c) for i, s, c in seen}
    assert not any(tail.emitted(i, s, c) for i, s, c in seen if i in gone)
    assert all(tail.emitted(i, s, c) for i, (s, c) in last.items() if i not in gone)
