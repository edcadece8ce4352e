"""Date headers as aware UTC datetimes, or None so the caller falls back to the provider's own date."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_date_header(value: str | None) -> datetime | None:
    """RFC 5322 date to UTC; a date without zone (-0000) is taken as UTC; unparseable gives None."""
    if not value or not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
