"""How long an org keeps data it no longer needs: read from its policy, never past the privacy policy's year."""

from __future__ import annotations

from collections.abc import Mapping

from models.org_policy import MAX_RETENTION_DAYS


def policy_days(policy: Mapping[str, object], key: str, default: int) -> int:
    """A whole number of days from the org's policy, within [0, one year]; a malformed value means `default`."""
    raw = policy.get(key, default)
    days = int(raw) if isinstance(raw, int | float | str) and str(raw).isdigit() else default
    return max(0, min(days, MAX_RETENTION_DAYS))


def retention_days(policy: Mapping[str, object]) -> int:
    """Days after a membership ends before its data is deleted (default and ceiling: one year)."""
    return policy_days(policy, "retention_days", MAX_RETENTION_DAYS)


def disconnect_grace_days(policy: Mapping[str, object]) -> int:
    """Days a disconnected source's data waits for a reconnect before it is purged (default: none)."""
    return policy_days(policy, "disconnect_grace_days", 0)
