"""Google's partial-response `fields` selector (e.g. "messages(id,threadId),nextPageToken")."""

from __future__ import annotations

import functools
from typing import Any

Mask = dict[str, "Mask | None"]  # None: the whole sub-tree


class FieldsError(ValueError):
    """The selector does not parse."""


@functools.lru_cache(maxsize=256)
def parse_fields(text: str) -> Mask:
    """The selector as a mask, shared by every call with the same text (read it, never change it): a batch
    asks for the same fields in each of its parts."""
    mask, pos = _parse_list(text.replace(" ", ""), 0)
    if pos != len(text.replace(" ", "")):
        raise FieldsError(f"Invalid field selection {text}")
    return mask


def _merge(into: Mask, key: str, sub: Mask | None) -> None:
    if key in into:
        old = into[key]
        if old is None or sub is None:
            into[key] = None
        else:
            for k, v in sub.items():
                _merge(old, k, v)
    else:
        into[key] = sub


def _parse_list(text: str, pos: int) -> tuple[Mask, int]:
    mask: Mask = {}
    while True:
        start = pos
        while pos < len(text) and text[pos] not in ",()":
            pos += 1
        path = text[start:pos]
        if not path or any(not seg for seg in path.split("/")):
            raise FieldsError(f"Invalid field selection {text}")
        sub: Mask | None = None
        if pos < len(text) and text[pos] == "(":
            sub, pos = _parse_list(text, pos + 1)
            if pos >= len(text) or text[pos] != ")":
                raise FieldsError(f"Invalid field selection {text}")
            pos += 1
        segments = path.split("/")
        for seg in reversed(segments[1:]):
            sub = {seg: sub}
        _merge(mask, segments[0], sub)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        return mask, pos


def apply_fields(obj: Any, mask: Mask | None) -> Any:
    """Keep only the selected members; selections apply to each element of arrays."""
    if mask is None:
        return obj
    if isinstance(obj, list):
        return [apply_fields(item, mask) for item in obj]
    if isinstance(obj, dict):
        return {k: apply_fields(v, mask[k]) for k, v in obj.items() if k in mask}
    return obj
