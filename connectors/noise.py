"""Why a message is noise rather than an interaction (automated sender, list mail, bulk, crowd)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

AUTOMATED_LOCAL_PARTS = frozenset(
    {
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "mailer-daemon",
        "postmaster",
        "bounce",
        "bounces",
        "notifications",
    }
)
BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
MAX_PARTICIPANTS = 25
CALENDAR_DOMAIN = ".calendar.google.com"  # group., resource., group.v., import. calendars


def is_calendar(email: str) -> bool:
    """A Google calendar's own address (a secondary, shared or resource calendar): not a person.

    It shows up as an organizer in Google Calendar, and in Outlook when a Google invitation is mirrored.
    """
    return email.endswith(CALENDAR_DOMAIN)


def is_automated(email: str) -> bool:
    """A normalized address whose local part (before any +tag) names a robot."""
    local = email.rpartition("@")[0]
    return local.partition("+")[0] in AUTOMATED_LOCAL_PARTS


def classify_noise(senders: Iterable[str], headers: Mapping[str, str], participant_count: int) -> str | None:
    """ "automated", "list", "bulk", "too_many", or None for a real interaction.

    `senders` are the normalized From addresses, `headers` maps lowercased header names to values,
    `participant_count` is the number of distinct addresses on the message.
    """
    if any(is_automated(sender) for sender in senders):
        return "automated"
    if headers.get("list-id", "").strip() or headers.get("list-unsubscribe", "").strip():
        return "list"
    if headers.get("precedence", "").strip().lower() in BULK_PRECEDENCE:
        return "bulk"
    if participant_count > MAX_PARTICIPANTS:
        return "too_many"
    return None
