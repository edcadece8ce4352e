"""RS256 JSON Web Tokens and their JWKS, so the emulator's id_tokens verify like Microsoft's."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class Signer:
    """One RSA signing key with a key id; `sign` makes a compact JWS, `jwks` publishes the public half."""

    def __init__(self, seed: int = 0) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        self.kid = b64url(hashlib.sha256(f"{seed}:{numbers.n}".encode()).digest()[:20])
        self._public = {"kty": "RSA", "use": "sig", "kid": self.kid, "n": _uint(numbers.n), "e": _uint(numbers.e)}

    def sign(self, claims: dict[str, Any]) -> str:
        """Compact RS256 JWS of `claims` with this key's kid."""
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        head = b64url(json.dumps(header, separators=(",", ":")).encode())
        body = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{head}.{body}".encode("ascii")
        signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{b64url(signature)}"

    def jwks(self, issuer: str) -> dict[str, Any]:
        """The key set document, as /discovery/v2.0/keys serves it."""
        return {"keys": [{**self._public, "x5t": self.kid, "issuer": issuer}]}
