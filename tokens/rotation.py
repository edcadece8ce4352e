"""Re-encrypt every stored secret under the newest key, so older keys can be retired."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.tables import Credential, OAuthState, StoredSecret
from tokens.vault import Vault


def rotate_stored_secrets(session: Session, vault: Vault) -> int:
    """Rotate credentials and pending consent verifiers (rows locked; versions unchanged). Caller commits."""
    count = 0
    for credential in session.execute(select(Credential).with_for_update()).scalars():
        credential.access_token = vault.rotate(credential.access_token)
        if credential.refresh_token is not None:
            credential.refresh_token = vault.rotate(credential.refresh_token)
        count += 1
    for state in session.execute(select(OAuthState).where(OAuthState.used_at.is_(None))).scalars():
        state.code_verifier = vault.rotate(state.code_verifier)
        count += 1
    for secret in session.execute(select(StoredSecret).with_for_update()).scalars():
        secret.ciphertext = vault.rotate(secret.ciphertext)
        count += 1
    session.flush()
    return count
