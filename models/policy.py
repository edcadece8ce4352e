"""Relationship strength: an org's policy (defaults, per-org overrides) and the documented formula.

Strength between a member and a contact is `1 - exp(-S / scale)` where S sums, over their
interactions, the kind's weight times `0.5 ** (age_days / half_life_days)`: deterministic, in [0, 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DEFAULT_WEIGHTS: Mapping[str, float] = {"email_out": 1.0, "email_in": 0.7, "meeting": 3.0, "call": 2.0}


@dataclass(frozen=True)
class StrengthPolicy:
    """Weights per interaction kind, half-life of an interaction's weight, and the squash scale."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    half_life_days: float = 90.0
    scale: float = 10.0

    @classmethod
    def from_org_policy(cls, policy: Mapping[str, Any]) -> StrengthPolicy:
        """The org's overrides (`weights`, `half_life_days`, `strength_scale`) over the defaults."""
        weights = dict(DEFAULT_WEIGHTS)
        weights.update({k: float(v) for k, v in dict(policy.get("weights", {})).items() if k in weights})
        return cls(
            weights=weights,
            half_life_days=float(policy.get("half_life_days", 90.0)),
            scale=float(policy.get("strength_scale", 10.0)),
        )


def decayed_weight(kind: str, occurred_at: datetime, now: datetime, policy: StrengthPolicy) -> float:
    """One interaction's contribution: its weight halved every `half_life_days` of age."""
    age_days = max(0.0, (now - occurred_at).total_seconds() / 86400.0)
    return float(policy.weights[kind] * 0.5 ** (age_days / policy.half_life_days))


def strength(interactions: Iterable[tuple[str, datetime]], now: datetime, policy: StrengthPolicy) -> float:
    """`1 - exp(-S / scale)` where S sums the decayed weights of the interactions."""
    total = sum(decayed_weight(kind, at, now, policy) for kind, at in interactions)
    return 1.0 - math.exp(-total / policy.scale)
