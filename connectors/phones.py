"""Phone numbers in E.164, read with the org's default region, so one number is one identity."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from connectors.base import InvalidValue

PARSED_CACHE = 16_384  # (raw, region) answers kept per process: a page reads each phone twice (opt-out, record)


class InvalidPhone(InvalidValue):
    """Not a usable phone number; `reason` is phone_unparseable or phone_invalid."""


def normalize_phone(raw: str, region: str) -> str:
    """E.164 form of `raw` (national numbers read in `region`, e.g. "US"); raises InvalidPhone."""
    e164, reason, detail = _parsed(raw, region.upper())
    if e164 is None:
        raise InvalidPhone(reason, detail)
    return e164


@lru_cache(maxsize=PARSED_CACHE)
def _parsed(raw: str, region: str) -> tuple[str | None, str, str]:
    """(E.164, "", "") or (None, reason, detail): phonenumbers costs ~0.2 ms a number, so answers are kept."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        return None, "phone_unparseable", str(exc)
    if not phonenumbers.is_valid_number(number):
        return None, "phone_invalid", ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), "", ""
