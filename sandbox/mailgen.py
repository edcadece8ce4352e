"""Raw RFC 5322 header text in the many shapes real mail uses (encoded words, quoting, odd dates)."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta

from sandbox import vocab

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SPECIALS = frozenset('()<>[]:;@\\,."')
_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+_-"


def encode_b(text: str) -> str:
    """RFC 2047 B-encoded word in UTF-8."""
    return "=?UTF-8?B?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def encode_q_latin1(text: str) -> str | None:
    """RFC 2047 Q-encoded word in ISO-8859-1, or None when the text is not Latin-1."""
    try:
        raw = text.encode("iso-8859-1")
    except UnicodeEncodeError:
        return None
    out = []
    for byte in raw:
        ch = chr(byte)
        if ch == " ":
            out.append("_")
        elif ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            out.append(f"={byte:02X}")
    return "=?iso-8859-1?Q?" + "".join(out) + "?="


def quote_name(name: str) -> str:
    """A display name as a phrase: quoted when it holds specials."""
    if any(c in _SPECIALS for c in name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


def mailbox(name: str, email: str, rng: random.Random | None = None) -> str:
    """One address with an optional display name, in a randomly chosen but valid style."""
    if not name:
        return email
    style = rng.random() if rng is not None else 0.5
    if not name.isascii():
        if style < 0.4:
            return f"{encode_b(name)} <{email}>"
        if style < 0.7:
            q = encode_q_latin1(name)
            if q is not None:
                return f"{q} <{email}>"
        return f"{quote_name(name)} <{email}>"
    if style < 0.03:
        return f"{email} ({name})"
    if style < 0.06:
        return f'"{name}" <{email}>'
    return f"{quote_name(name)} <{email}>"


def format_date(when: datetime, tz_minutes: int, comment: str = "", pad_day: bool = True) -> str:
    """RFC 5322 date-time in the sender's offset, as mailers write it."""
    local = when.astimezone(UTC) + timedelta(minutes=tz_minutes)
    sign = "+" if tz_minutes >= 0 else "-"
    off = abs(tz_minutes)
    day = f"{local.day:02d}" if pad_day else str(local.day)
    return (
        f"{_WEEKDAYS[local.weekday()]}, {day} {_MONTHS[local.month - 1]} {local.year} "
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d} {sign}{off // 60:02d}{off % 60:02d}{comment}"
    )


def message_id(rng: random.Random, domain: str, when_ms: int) -> str:
    """A Message-ID in one of the common generator styles (Gmail, Exchange, Apple, generic)."""
    r = rng.random()
    if domain == "gmail.com" or r < 0.25:
        tail = "".join(rng.choice(_B64_CHARS) for _ in range(40))
        return f"<CA+{tail}@mail.gmail.com>"
    if domain == "outlook.com" or r < 0.5:
        prefix = rng.choice(vocab.EXCHANGE_PREFIXES) + str(rng.randint(1000, 9999))
        return f"<{prefix}{rng.getrandbits(128):032X}@{prefix}.namprd{rng.randint(1, 22):02d}.prod.outlook.com>"
    if r < 0.65:
        u = f"{rng.getrandbits(128):032X}"
        return f"<{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}@{domain}>"
    return f"<{when_ms}.{rng.getrandbits(40):x}@mail.{domain}>"


def slug(text: str) -> str:
    """Lower-case ASCII-ish slug for local parts and domains (keeps non-ASCII letters)."""
    out = []
    for ch in text.lower():
        if ch.isalnum():
            out.append(ch)
        elif ch in " -'.&" and out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")
