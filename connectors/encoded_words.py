"""Readable header text: RFC 2047 encoded words decoded, leniently, so a broken one never stops a sync."""

from __future__ import annotations

import base64
import binascii
import re

# =?charset[*lang]?B|Q?payload?= ; payload is printable ASCII without "?" or spaces.
_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([!->@-~]*)\?=")


def _decode_word(match: re.Match[str]) -> str | None:
    """One encoded word's text, or None when its payload is not valid base64."""
    charset, encoding, payload = match.groups()
    if encoding in "bB":
        try:
            data = base64.b64decode(payload + "=" * (-len(payload) % 4))
        except (binascii.Error, ValueError):
            return None
    else:
        data = binascii.a2b_qp(payload.encode("ascii"), header=True)
    try:
        return data.decode(charset, errors="replace")
    except (LookupError, UnicodeError):  # unknown or non-text charset: UTF-8 is what senders meant
        return data.decode("utf-8", errors="replace")


def decode_header_text(value: str) -> str:
    """Decode encoded words (whitespace between adjacent ones dropped) and collapse all whitespace."""
    parts: list[str] = []
    position = 0
    previous_was_word = False
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        decoded = _decode_word(match)
        if not (previous_was_word and decoded is not None and between.isspace()):
            parts.append(between)
        parts.append(match.group(0) if decoded is None else decoded)
        previous_was_word = decoded is not None
        position = match.end()
    parts.append(value[position:])
    return " ".join("".join(parts).split())
