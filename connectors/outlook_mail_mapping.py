"""A Graph message (Mail.ReadBasic fields) into one normalized observation plus rejections, never raising.

Mail.ReadBasic gives no transport headers (no List-Id, List-Unsubscribe or Precedence), so noise
here is what the structured fields show: an automated sender's local part, or more than 25
participants. Should a message carry `internetMessageHeaders` (a broader grant), they are used too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.addresses import display_name
from connectors.base import ActivityObservation, Deletion, Observation, Participant, ParticipantRole, Rejection
from connectors.emails import InvalidAddress, normalize_email
from connectors.gmail_mapping import dedupe_key as header_dedupe_key
from connectors.noise import classify_noise

SOURCE = "outlook_mail"
ROLES: tuple[tuple[ParticipantRole, str], ...] = (
    ("from", "from"), ("to", "toRecipients"), ("cc", "ccRecipients"), ("bcc", "bccRecipients"),
)  # fmt: skip
SELECT = "internetMessageId,subject,sender,from,toRecipients,ccRecipients,bccRecipients,receivedDateTime,sentDateTime"


def parse_time(value: Any) -> datetime | None:
    """A Graph DateTimeOffset ("2026-01-05T10:00:00Z") as aware UTC, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # unreadable, or beyond UTC's range (year 1 east of UTC)
        return None


def _recipients(value: Any) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    return [i["emailAddress"] for i in items if isinstance(i, dict) and isinstance(i.get("emailAddress"), dict)]


def _participants(external_id: str, message: Mapping[str, Any]) -> tuple[tuple[Participant, ...], list[Rejection]]:
    """Participants by role, each (role, email) once; an unusable address is a rejection beside the rest."""
    found: dict[tuple[str, str], Participant] = {}
    rejections: list[Rejection] = []
    for role, key in ROLES:
        value = message.get(key) or (message.get("sender") if role == "from" else None)
        for entry in _recipients(value):
            raw = str(entry.get("address") or "")
            try:
                email = normalize_email(raw)
            except InvalidAddress as exc:
                rejections.append(Rejection(SOURCE, external_id, exc.reason, f"{role.title()}: {raw[:120]}"))
                continue
            name = display_name(str(entry.get("name") or ""), email)
            found.setdefault((role, email), Participant(role, email, name))
    return tuple(found.values()), rejections


def dedupe_key(message: Mapping[str, Any]) -> str:
    """internetMessageId normalized as Gmail's Message-ID (<> and whitespace stripped): one email, one key."""
    key = header_dedupe_key({"message-id": [str(message.get("internetMessageId") or "")]})
    if not key.startswith("synthetic:"):
        return key
    parts = [str(message.get(k) or "") for k in ("sentDateTime", "subject")]
    parts += [str(e.get("address") or "") for r, k in ROLES for e in _recipients(message.get(k))]
    return "synthetic:" + hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _headers(message: Mapping[str, Any]) -> dict[str, str]:
    raw = message.get("internetMessageHeaders")
    out: dict[str, str] = {}
    for header in raw if isinstance(raw, list) else ():
        if isinstance(header, dict) and isinstance(header.get("name"), str) and isinstance(header.get("value"), str):
            out.setdefault(header["name"].lower(), header["value"])
    return out


def map_message(external_id: str, message: Mapping[str, Any]) -> tuple[Observation | None, list[Rejection]]:
    """One Graph message copy to an ActivityObservation (or a Deletion for a draft), with rejections."""
    if message.get("isDraft") is True:
        return Deletion(SOURCE, external_id), []
    occurred_at = parse_time(message.get("sentDateTime")) or parse_time(message.get("receivedDateTime"))
    if occurred_at is None:
        return None, [Rejection(SOURCE, external_id, "no_date", "no usable sentDateTime nor receivedDateTime")]
    participants, rejections = _participants(external_id, message)
    senders = [p.email for p in participants if p.role == "from"]
    subject = message.get("subject")
    return ActivityObservation(
        source=SOURCE,
        external_id=external_id,
        kind="email",
        dedupe_key=dedupe_key(message),
        occurred_at=occurred_at,
        participants=participants,
        noise=classify_noise(senders, _headers(message), len({p.email for p in participants})),
        subject=subject if isinstance(subject, str) else None,
        malformed_from=not senders,
    ), rejections
