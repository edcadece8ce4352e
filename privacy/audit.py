"""The audit log's read side (API and CLI) and one way to write to it, so no entry ever shows a secret."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.tables import AuditEvent

MAX_LIMIT = 1000
MASK = "[redacted]"
# Keys whose values could be credentials: masked on the way out even if a writer slipped one in.
_SECRET_KEY = re.compile(r"token|secret|verifier|code|key|authorization|cookie|credential", re.IGNORECASE)
_SAFE_KEYS = frozenset({"token_type", "status_code", "expires_in"})


class BadQuery(ValueError):
    """A malformed filter (time, limit), with a message for the caller."""


@dataclass(frozen=True)
class AuditQuery:
    """Filters of an audit query; `action` is exact, or a prefix when it ends with `.*`."""

    org_id: int | None  # None: every org and the cross-org events (operators only)
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    limit: int = 100


def record(session: Session, *, org_id: int | None, actor: str, action: str, target: str = "", **details: Any) -> None:
    """Add an audit event to the session's transaction (never pass a secret; it is masked anyway)."""
    session.add(AuditEvent(org_id=org_id, actor=actor, action=action, target=target, details=_masked(details)))


def parse_when(raw: str | None) -> datetime | None:
    """An ISO 8601 date or time (a date is its midnight, no zone is UTC); a clear error otherwise."""
    if raw is None or raw == "":
        return None
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadQuery(f"not an ISO 8601 date or time: {raw[:40]!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def query_audit(session: Session, query: AuditQuery) -> tuple[list[dict[str, Any]], bool]:
    """Matching events, newest first, and whether more matched than the limit."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise BadQuery(f"limit must be between 1 and {MAX_LIMIT}")
    stmt = select(AuditEvent)
    if query.org_id is not None:
        stmt = stmt.where(AuditEvent.org_id == query.org_id)
    if query.since is not None:
        stmt = stmt.where(AuditEvent.at >= query.since)
    if query.until is not None:
        stmt = stmt.where(AuditEvent.at < query.until)
    if query.action:
        if query.action.endswith(".*"):
            stmt = stmt.where(AuditEvent.action.startswith(query.action[:-1], autoescape=True))
        else:
            stmt = stmt.where(AuditEvent.action == query.action)
    rows = session.execute(stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(query.limit + 1))
    events = list(rows.scalars())
    return [render(e) for e in events[: query.limit]], len(events) > query.limit


def render(event: AuditEvent) -> dict[str, Any]:
    """One entry as the API and the CLI show it."""
    return {
        "id": event.id,
        "at": event.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "details": _masked(event.details or {}),
    }


def _masked(details: dict[str, Any]) -> dict[str, Any]:
    """String values under secret-sounding keys are masked, at any depth (counts and flags stay)."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        if _SECRET_KEY.search(key) and key not in _SAFE_KEYS and isinstance(value, str) and value:
            out[key] = MASK
        elif isinstance(value, dict):
            out[key] = _masked(value)
        else:
            out[key] = value
    return out
