"""How long a provider asked us to wait: the Retry-After header, else an exponential backoff hint."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from connectors.dates import parse_date_header

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 300.0
_DELTA_SECONDS = re.compile(r"\d{1,9}(\.\d+)?")  # RFC 9110 says digits; some servers send "1.5"


def backoff_hint(attempt: int) -> float:
    """1, 2, 4, ... seconds for attempt 0, 1, 2, ..., capped at five minutes."""
    return min(BACKOFF_BASE_SECONDS * 2.0 ** max(attempt, 0), BACKOFF_CAP_SECONDS)


def retry_after_seconds(value: str | None, attempt: int = 0, now: datetime | None = None) -> float:
    """Seconds to wait per a Retry-After value (delta-seconds or HTTP-date), else `backoff_hint(attempt)`."""
    text = (value or "").strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    when = parse_date_header(text)
    if when is None:
        return backoff_hint(attempt)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
