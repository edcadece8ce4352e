"""Date headers and provider zone names as aware datetimes, or None so the caller falls back or rejects."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz


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


def named_zone(name: object) -> ZoneInfo | None:
    """The zone a provider names, IANA ("Europe/Berlin") or Windows ("W. Europe Standard Time", which
    Graph's dateTimeTimeZone may carry), or None for anything else.

    ZoneInfo reads files: a name that is a directory ("Europe") or too long for a path raises OSError,
    not ZoneInfoNotFoundError, so every lookup goes through here.
    """
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(win_tz.get(name, name))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
