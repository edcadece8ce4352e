"""Compact HMAC-signed, expiring, purpose-bound tokens for OAuth state and connect links."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

MAX_TOKEN_LENGTH = 4096  # refuse to parse anything larger: a state is ~100 characters


class InvalidToken(Exception):
    """A signed token that must not be trusted."""


class BadSignature(InvalidToken):
    """Forged, tampered, malformed, signed with another key or for another purpose."""


class Expired(InvalidToken):
    """Genuine, but past its expiry."""


def sign(
    payload: Mapping[str, Any], purpose: str, ttl_seconds: int, key: bytes, *, now: datetime | None = None
) -> str:
    """`body.mac`: base64url JSON {payload, expiry} and an HMAC-SHA256 over purpose and body."""
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued = _timestamp(now)
    body = json.dumps({"d": dict(payload), "e": int(issued + ttl_seconds)}, separators=(",", ":"))
    encoded = _b64encode(body.encode("utf-8"))
    return f"{encoded}.{_b64encode(_mac(key, purpose, encoded))}"


def verify(token: str, purpose: str, key: bytes, now: datetime | None = None) -> dict[str, Any]:
    """The payload of a genuine, unexpired token signed for `purpose`; raises otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise BadSignature("malformed signed token")
    encoded, mac_text = token.split(".")
    try:
        given = _b64decode(mac_text)
    except ValueError:
        raise BadSignature("malformed signed token") from None
    if not hmac.compare_digest(given, _mac(key, purpose, encoded)):
        raise BadSignature("signature does not match")
    try:
        body = json.loads(_b64decode(encoded))
    except ValueError:
        raise BadSignature("malformed signed token") from None
    if not isinstance(body, dict) or not isinstance(body.get("d"), dict) or type(body.get("e")) is not int:
        raise BadSignature("malformed signed token")
    if _timestamp(now) >= body["e"]:
        raise Expired("signed token has expired")
    payload: dict[str, Any] = body["d"]
    return payload


def _mac(key: bytes, purpose: str, encoded_body: str) -> bytes:
    """The purpose is inside the MAC, so a token for one use never verifies for another."""
    if not purpose or "\x00" in purpose:
        raise ValueError("purpose must be a non-empty label")
    message = purpose.encode("utf-8") + b"\x00" + encoded_body.encode("ascii")
    return hmac.new(key, message, hashlib.sha256).digest()


def _timestamp(now: datetime | None) -> float:
    """Seconds since the epoch of `now` (aware) or of the current time."""
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.timestamp()


def _b64encode(raw: bytes) -> str:
    """base64url without padding (URL- and cookie-safe)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Inverse of `_b64encode`; ValueError on anything that is not base64url."""
    if not text or not all(c.isalnum() or c in "-_" for c in text) or not text.isascii():
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
