"""Opaque page and sync tokens for the Calendar and People emulators, signed so clients cannot forge them.

The key comes from the world's seed, so tokens a client stored survive a sandbox restart on the same world.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_MAC_CHARS = 16


class Signer:
    """Signs `prefix|part|part…` payloads into URL-safe tokens and reads them back."""

    def __init__(self, seed: int, purpose: str) -> None:
        self._key = hashlib.sha256(f"sandbox-tokens|{purpose}|{seed}".encode()).digest()

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()[:_MAC_CHARS]

    def sign(self, prefix: str, *parts: object) -> str:
        payload = "|".join([prefix, *(str(p) for p in parts)])
        raw = f"{payload}|{self._mac(payload)}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def unsign(self, token: str, prefix: str, count: int) -> list[str] | None:
        """The `count` parts of a token this signer made with `prefix`, or None."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        payload, _, mac = raw.rpartition("|")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        parts = payload.split("|")
        if parts[0] != prefix or len(parts) != count + 1:
            return None
        return parts[1:]


def filter_key(*values: object) -> str:
    """A short digest of the query parameters a page or sync token is bound to."""
    return hashlib.sha256(repr(values).encode()).hexdigest()[:12]


class ChangeLog:
    """One change counter and per-scope floors: a sync token is the counter value it was issued at."""

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        self.floor: dict[str, int] = {}

    def tick(self) -> int:
        self.seq += 1
        return self.seq

    def valid(self, scope: str, seq: int, retention: int | None) -> bool:
        """Whether a token at `seq` still works (`retention`: changes a token survives, None: all)."""
        if seq < self.floor.get(scope, 0) or seq > self.seq:
            return False
        return retention is None or self.seq - seq <= retention

    def expire(self, scopes: list[str]) -> None:
        """Every token issued so far for these scopes is refused from now on (tokens issued later work)."""
        self.seq += 1
        for scope in scopes:
            self.floor[scope] = self.seq
