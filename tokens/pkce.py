"""PKCE (RFC 7636): a secret verifier per consent, sent to the provider only as its S256 hash."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def make_verifier(length: int = 64) -> str:
    """A high-entropy verifier of `length` (43..128) unreserved characters."""
    if not 43 <= length <= 128:
        raise ValueError("a PKCE verifier is 43 to 128 characters long")
    verifier = secrets.token_urlsafe(96)[:length]  # 96 bytes -> 128 base64url characters
    return verifier


def is_valid_verifier(verifier: str) -> bool:
    """Whether `verifier` is 43..128 characters of [A-Za-z0-9-._~]."""
    return _VERIFIER.fullmatch(verifier) is not None


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding."""
    if not is_valid_verifier(verifier):
        raise ValueError("not a valid PKCE verifier")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
