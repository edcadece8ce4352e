"""Product secrets kept encrypted in the store, created on first use (safe when processes race)."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.store import insert_ignore
from models.tables import StoredSecret
from tokens.vault import Vault


def stored_secret(sessions: sessionmaker[Session], vault: Vault, name: str) -> bytes:
    """The named 32-byte secret, generated and stored (encrypted) the first time anyone asks."""
    with sessions.begin() as session:
        insert_ignore(
            session,
            StoredSecret,
            [{"name": name, "ciphertext": vault.encrypt(secrets.token_hex(32))}],
            ["name"],
        )
    with sessions() as session:
        ciphertext = session.execute(select(StoredSecret.ciphertext).where(StoredSecret.name == name)).scalar_one()
    return bytes.fromhex(vault.decrypt(ciphertext))
