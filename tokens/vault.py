"""Encryption at rest for tokens, so a copy of the database alone reveals no credential."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from models.settings import Settings, SettingsError

SIGNING_INFO = b"sxsync/signing/v1"  # HKDF label: the signing key never equals an encryption key


class DecryptError(Exception):
    """A ciphertext that no configured key opens (tampered, or its key was retired)."""


class Vault:
    """MultiFernet over the configured keys: encrypt with the newest, decrypt with any."""

    __slots__ = ("_multi", "_newest")

    def __init__(self, keys: Sequence[str]) -> None:
        if isinstance(keys, str) or not keys:
            raise ValueError("at least one Fernet key is required (a list, newest first)")
        fernets: list[Fernet] = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip()))
            except (ValueError, TypeError):
                raise ValueError(
                    f"key #{position} is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        self._multi = MultiFernet(fernets)
        self._newest = base64.urlsafe_b64decode(keys[0].strip())

    def __repr__(self) -> str:  # never show a key
        return "Vault(keys=<hidden>)"

    def encrypt(self, plaintext: str) -> bytes:
        """Encrypt under the newest key."""
        return self._multi.encrypt(plaintext.encode("utf-8"))

    def decrypt(self, ciphertext: bytes) -> str:
        """Decrypt with whichever configured key made it."""
        try:
            return self._multi.decrypt(bytes(ciphertext)).decode("utf-8")
        except InvalidToken:
            raise DecryptError("ciphertext does not decrypt under any configured key") from None

    def rotate(self, ciphertext: bytes) -> bytes:
        """Re-encrypt under the newest key (so older keys can be retired)."""
        try:
            return self._multi.rotate(bytes(ciphertext))
        except InvalidToken:
            raise DecryptError("ciphertext does not decrypt under any configured key") from None

    def signing_key(self) -> bytes:
        """An HMAC key derived from the newest key, for signed states and links."""
        return _derive_signing_key(self._newest)


def parse_keys(raw: str) -> list[str]:
    """`SXSYNC_SECRET_KEYS` (comma-separated, newest first) as a list, blanks dropped."""
    return [part.strip() for part in raw.split(",") if part.strip()]


def vault_from_settings(settings: Settings) -> Vault:
    """The process's vault, or one clear line naming SXSYNC_SECRET_KEYS."""
    keys = parse_keys(settings.secret_keys)
    if not keys:
        raise SettingsError(
            "SXSYNC_SECRET_KEYS: missing (comma-separated Fernet keys, newest first; "
            "make one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`)"
        )
    try:
        return Vault(keys)
    except ValueError as exc:
        raise SettingsError(f"SXSYNC_SECRET_KEYS: {exc}") from None


def signing_key(source: Settings | Vault | Sequence[str]) -> bytes:
    """The HMAC key for signed tokens, derived from the newest secret key."""
    if isinstance(source, Vault):
        return source.signing_key()
    if isinstance(source, Settings):
        return vault_from_settings(source).signing_key()
    return Vault(source).signing_key()


def _derive_signing_key(newest_key: bytes) -> bytes:
    """HKDF-SHA256 with a fixed label, so signing and encryption keys stay separate."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SIGNING_INFO).derive(newest_key)
