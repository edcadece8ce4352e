"""The opt-out list: identities kept only as keyed hashes, so the list itself names no one."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.store import among, insert_ignore
from models.tables import Suppression


def suppression_hash(key: str, secret: bytes) -> str:
    """HMAC-SHA256 of a normalized identity key ("email:…", "phone:+…")."""
    return hmac.digest(secret, key.encode("utf-8"), hashlib.sha256).hex()  # the one-shot C path


def suppress(session: Session, key: str, secret: bytes) -> None:
    """Add the identity to the list (idempotent)."""
    insert_ignore(session, Suppression, [{"identity_hash": suppression_hash(key, secret)}], ["identity_hash"])


def suppressed(session: Session, keys: Iterable[str], secret: bytes) -> set[str]:
    """Which of these keys are on the list (one query per 500 keys)."""
    by_hash = {suppression_hash(k, secret): k for k in set(keys)}
    found: set[str] = set()
    hashes = sorted(by_hash)
    for start in range(0, len(hashes), 500):
        chunk = among(session, Suppression.identity_hash, hashes[start : start + 500])
        found.update(by_hash[h] for h in session.execute(select(Suppression.identity_hash).where(chunk)).scalars())
    return found
