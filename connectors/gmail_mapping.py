"""A Gmail `format=metadata` message into one normalized observation plus rejections, never raising."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from connectors.addresses import AddressList, parse_address_list
from connectors.base import (
    ActivityObservation,
    Deletion,
    Observation,
    Participant,
    ParticipantRole,
    Rejection,
)
from connectors.dates import parse_date_header
from connectors.encoded_words import decode_header_text
from connectors.noise import classify_noise

SOURCE = "gmail"
# Not a sent or received email as far as the network is concerned: gone, junk, or never sent.
HIDDEN_LABELS = frozenset({"TRASH", "SPAM", "DRAFT"})
PARTICIPANT_HEADERS: tuple[ParticipantRole, ...] = ("from", "to", "cc", "bcc")  # never Reply-To
_BRACKETED_ID = re.compile(r"<([^<>]*)>")
ADDRESS_CACHE_SIZE = 2048
CACHED_VALUE_MAX = 1000  # characters: a sender, a few recipients; a long list is parsed every time


@dataclass(frozen=True)
class Mapped:
    """What one message gave: an observation (None when unusable) and rejections."""

    observation: Observation | None
    rejections: list[Rejection] = field(default_factory=list)


def is_hidden(labels: object) -> bool:
    """Whether a labelIds value puts the message in trash, spam or drafts."""
    return isinstance(labels, list) and not HIDDEN_LABELS.isdisjoint(x for x in labels if isinstance(x, str))


def headers_of(message: Mapping[str, Any]) -> dict[str, list[str]]:
    """Header values by lowercased name, in order; anything not shaped like a header is skipped."""
    payload = message.get("payload")
    raw = payload.get("headers") if isinstance(payload, Mapping) else None
    headers: dict[str, list[str]] = {}
    for header in raw if isinstance(raw, list) else ():
        if isinstance(header, Mapping):
            name, value = header.get("name"), header.get("value")
            if isinstance(name, str) and isinstance(value, str):
                headers.setdefault(name.lower(), []).append(value)
    return headers


def internal_date(message: Mapping[str, Any]) -> datetime | None:
    """Gmail's internalDate (epoch ms as a string) as UTC, or None when absent or absurd."""
    try:
        return datetime.fromtimestamp(int(message["internalDate"]) / 1000, UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


def dedupe_key(headers: Mapping[str, list[str]]) -> str:
    """The Message-ID without <> and whitespace; else a hash of From, Date, Subject, To.

    The hash is the same in every mailbox holding a copy, so copies of an id-less message still
    collapse into one activity.
    """
    for value in headers.get("message-id", ()):
        match = _BRACKETED_ID.search(value)
        key = "".join((match.group(1) if match else value).split()).strip("<>")
        if key:
            return key
    parts = ("\n".join(headers.get(name, ())) for name in ("from", "date", "subject", "to"))
    return "synthetic:" + hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


@lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def _cached_address_list(value: str) -> AddressList:
    return parse_address_list(value)


def address_list(value: str) -> AddressList:
    """parse_address_list, remembered for the short values that recur page after page (the mailbox's own
    address, its usual correspondents): half the values of a first page of 50, two thirds of a page of 500."""
    return _cached_address_list(value) if len(value) <= CACHED_VALUE_MAX else parse_address_list(value)


def _participants(message_id: str, headers: Mapping[str, list[str]]) -> tuple[tuple[Participant, ...], list[Rejection]]:
    """Participants by role, each (role, email) once; every malformed entry becomes a rejection."""
    participants: dict[tuple[str, str], Participant] = {}
    rejections: list[Rejection] = []
    for role in PARTICIPANT_HEADERS:
        for value in headers.get(role, ()):
            parsed = address_list(value)
            for address in parsed.addresses:
                participants.setdefault((role, address.email), Participant(role, address.email, address.name))
            rejections.extend(
                Rejection(SOURCE, message_id, bad.reason, f"{role.title()}: {bad.raw[:120]}") for bad in parsed.rejected
            )
    return tuple(participants.values()), rejections


def map_message(message: Mapping[str, Any]) -> Mapped:
    """One Gmail message (metadata format) to an ActivityObservation, a Deletion, or a rejection."""
    message_id = message.get("id")
    if not isinstance(message_id, str) or not message_id:
        return Mapped(None, [Rejection(SOURCE, "", "no_id", "message without an id")])
    if is_hidden(message.get("labelIds")):
        return Mapped(Deletion(SOURCE, message_id))
    headers = headers_of(message)
    first = {name: values[0] for name, values in headers.items()}
    occurred_at = parse_date_header(first.get("date")) or internal_date(message)
    if occurred_at is None:
        return Mapped(None, [Rejection(SOURCE, message_id, "no_date", "no usable Date nor internalDate")])
    participants, rejections = _participants(message_id, headers)
    senders = [p.email for p in participants if p.role == "from"]
    subject = first.get("subject")
    observation = ActivityObservation(
        source=SOURCE,
        external_id=message_id,
        kind="email",
        dedupe_key=dedupe_key(headers),
        occurred_at=occurred_at,
        participants=participants,
        noise=classify_noise(senders, first, len({p.email for p in participants})),
        subject=decode_header_text(subject) if subject is not None else None,
        malformed_from=not senders,
    )
    return Mapped(observation, rejections)
