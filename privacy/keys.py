"""Key rotation as an operator runs it: re-encrypt under the newest key, then prove old keys can retire."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from models.rls import all_orgs
from models.settings import SettingsError
from models.tables import Credential, OAuthState, StoredSecret
from privacy.audit import record
from sync.runtime import Runtime
from tokens.rotation import rotate_stored_secrets
from tokens.vault import DecryptError, Vault, parse_keys

STUCK = (
    "SXSYNC_SECRET_KEYS: a stored secret does not decrypt under any configured key; put back the key it was"
    " written with (after the new one: NEW,OLD) and run `sxsync rotate-keys` before retiring it"
)


@dataclass(frozen=True)
class KeyCheck:
    """How many stored secrets there are, and how many the newest key alone opens."""

    total: int
    under_newest: int


def rotate_keys(rt: Runtime, *, actor: str) -> int:
    """Re-encrypt every stored secret under the newest key in one transaction; audited."""
    try:
        with rt.writes.begin() as session:
            all_orgs(session, actor=actor, reason="secrets.rotate")
            count = rotate_stored_secrets(session, rt.vault)
            record(
                session,
                org_id=None,
                actor=actor,
                action="secrets.rotated",
                secrets=count,
                keys=len(parse_keys(rt.settings.secret_keys)),
            )
    except DecryptError:
        raise SettingsError(STUCK) from None
    return count


def check_keys(rt: Runtime) -> KeyCheck:
    """Count stored secrets (as rotation counts them) and those the newest key alone opens; clear error if stuck."""
    newest = Vault(parse_keys(rt.settings.secret_keys)[:1])
    with rt.writes.begin() as session:
        all_orgs(session, actor="cli", reason="secrets.check")
        items: list[tuple[bytes | None, ...]] = [
            (access, refresh)
            for access, refresh in session.execute(select(Credential.access_token, Credential.refresh_token))
        ]
        items += [
            (v,)
            for v in session.execute(select(OAuthState.code_verifier).where(OAuthState.used_at.is_(None))).scalars()
        ]
        items += [(c,) for c in session.execute(select(StoredSecret.ciphertext)).scalars()]
    under_newest = 0
    for item in items:
        parts = [bytes(c) for c in item if c]
        if not all(_opens(rt.vault, c) for c in parts):
            raise SettingsError(STUCK)
        under_newest += all(_opens(newest, c) for c in parts)
    return KeyCheck(len(items), under_newest)


def _opens(vault: Vault, ciphertext: bytes) -> bool:
    """Whether the vault decrypts it."""
    try:
        vault.decrypt(ciphertext)
    except DecryptError:
        return False
    return True
