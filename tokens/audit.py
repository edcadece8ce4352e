"""Every token use and change lands in the audit log (what happened, never the secret)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models.tables import AuditEvent

ACTOR = "tokens"


def audit(
    session: Session, *, org_id: int | None, action: str, connection_id: int | None, **details: Any
) -> None:
    """Add an audit event about a connection's credential to the session's transaction."""
    target = f"connection:{connection_id}" if connection_id is not None else ""
    session.add(AuditEvent(org_id=org_id, actor=ACTOR, action=action, target=target, details=details))
