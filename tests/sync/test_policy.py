"""The strength formula: documented value, monotonicity, bounds, per-org overrides."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from models.policy import StrengthPolicy, strength

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_matches_the_documented_formula() -> None:
    items = [("email_out", NOW), ("meeting", NOW - timedelta(days=90)), ("email_in", NOW - timedelta(days=180))]
    s = 1.0 + 3.0 * 0.5 + 0.7 * 0.25
    assert math.isclose(strength(items, NOW, StrengthPolicy()), 1 - math.exp(-s / 10))


def test_org_overrides_weights_and_half_life() -> None:
    policy = StrengthPolicy.from_org_policy({"weights": {"call": 5}, "half_life_days": 30})
    assert math.isclose(strength([("call", NOW - timedelta(days=30))], NOW, policy), 1 - math.exp(-2.5 / 10))


kinds = st.sampled_from(["email_out", "email_in", "meeting", "call"])
ages = st.floats(min_value=0, max_value=2000)


@given(st.lists(st.tuples(kinds, ages), max_size=40), kinds, ages)
def test_in_unit_interval_and_more_interactions_never_weaken(
    items: list[tuple[str, float]], kind: str, age: float
) -> None:
    dated = [(k, NOW - timedelta(days=a)) for k, a in items]
    base = strength(dated, NOW, StrengthPolicy())
    more = strength([*dated, (kind, NOW - timedelta(days=age))], NOW, StrengthPolicy())
    assert 0.0 <= base < 1.0
    assert more >= base
