"""connectors.lookback: what a lookback may skip is exactly a version emitted before, within the margin."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.base import CursorExpired
from connectors.lookback import TAIL_MAX, Tail

ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=6)
stamps = st.integers(min_value=0, max_value=10_000)
pairs = st.lists(st.tuples(ids, stamps), max_size=40)


@given(pairs, pairs, stamps)
def test_a_version_is_skipped_only_if_it_was_added_at_or_after_the_floor(
    before: list[tuple[str, int]], now: list[tuple[str, int]], floor: int
) -> None:
    tail = Tail().add(before, 0).add(now, floor)
    last = dict(before) | dict(now)  # the later of two versions of one id wins
    for record_id, stamp in [*before, *now]:
        assert tail.emitted(record_id, stamp) == (last[record_id] == stamp and stamp >= floor)


@given(pairs)
def test_a_tail_survives_its_json_round_trip(seen: list[tuple[str, int]]) -> None:
    tail = Tail().add(seen, 0)
    assert Tail.from_json(json.loads(json.dumps(tail.to_json()))) == tail


def test_the_newest_versions_are_kept_past_the_cap_and_nothing_unknown_is_skipped() -> None:
    tail = Tail().add(((str(i), i) for i in range(TAIL_MAX + 10)), 0)
    assert len(tail.stamps) == TAIL_MAX and tail.emitted(str(TAIL_MAX + 9), TAIL_MAX + 9)
    assert not tail.emitted("0", 0) and not tail.emitted("x", None) and not Tail.from_json(None).stamps


def test_a_tail_not_understood_expires_the_cursor() -> None:
    with pytest.raises(CursorExpired):
        Tail.from_json({"1": "soon"})


@given(pairs, st.sets(ids, max_size=5))
def test_a_record_left_out_is_never_skipped_again(seen: list[tuple[str, int]], gone: set[str]) -> None:
    tail = Tail().add(seen, 0).without(gone)
    assert not any(tail.emitted(i, s) for i, s in seen if i in gone)
    assert all(tail.emitted(i, s) for i, s in dict(seen).items() if i not in gone)
