"""Phone numbers in E.164, read with the org's default region, so one number is one identity."""

from __future__ import annotations

import phonenumbers

from connectors.base import InvalidValue


class InvalidPhone(InvalidValue):
    """Not a usable phone number; `reason` is phone_unparseable or phone_invalid."""


def normalize_phone(raw: str, region: str) -> str:
    """E.164 form of `raw` (national numbers read in `region`, e.g. "US"); raises InvalidPhone."""
    try:
        number = phonenumbers.parse(raw, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone("phone_unparseable", str(exc)) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("phone_invalid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
