"""Readable header text: RFC 2047 encoded words decoded, leniently, so a broken one never stops a sync."""

from __future__ import annotations

import base64
import binascii
import re

# =?charset[*lang]?B|Q?payload?= ; payload is printable ASCII without "?" or spaces.
_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([!->@-~]*)\?=")


def _word_bytes(match: re.Match[str]) -> tuple[str, bytes] | None:
    """One encoded word's (lowercased charset, bytes), or None when its payload is not valid base64."""
    charset, encoding, payload = match.groups()
    if encoding in "bB":
        try:
            return charset.lower(), base64.b64decode(payload + "=" * (-len(payload) % 4))
        except (binascii.Error, ValueError):
            return None
    return charset.lower(), binascii.a2b_qp(payload.encode("ascii"), header=True)


def _text(charset: str, data: bytes) -> str:
    try:
        return data.decode(charset, errors="replace")
    except (LookupError, UnicodeError):  # unknown or non-text charset: UTF-8 is what senders meant
        return data.decode("utf-8", errors="replace")


def _run_text(words: list[tuple[str, bytes]]) -> str:
    """Adjacent words of one charset decoded as one byte string: mailers split a character across words."""
    out: list[str] = []
    charset, data = words[0]
    for next_charset, next_data in words[1:]:
        if next_charset == charset:
            data += next_data
        else:
            out.append(_text(charset, data))
            charset, data = next_charset, next_data
    out.append(_text(charset, data))
    return "".join(out)


def decode_header_text(value: str) -> str:
    """Decode encoded words (whitespace between adjacent ones dropped) and collapse all whitespace."""
    parts: list[str] = []
    run: list[tuple[str, bytes]] = []  # decodable words seen in a row, separated by whitespace at most
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        word = _word_bytes(match)
        if word is None or not run or between.strip():
            if run:
                parts.append(_run_text(run))
                run = []
            parts.append(between)
        if word is None:
            parts.append(match.group(0))
        else:
            run.append(word)
        position = match.end()
    if run:
        parts.append(_run_text(run))
    parts.append(value[position:])
    return " ".join("".join(parts).split())
