"""Phone normalization to E.164: round trips for every region's example numbers, reasons otherwise."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.phones import InvalidPhone, normalize_phone

REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r) is not None)
FORMATS = [
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
]


@given(st.sampled_from(REGIONS), st.sampled_from(FORMATS))
def test_e164_round_trip_from_any_written_form(region: str, form: int) -> None:
    number = phonenumbers.example_number(region)
    assert number is not None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    written = phonenumbers.format_number(number, form)
    assert normalize_phone(written, region) == e164
    assert normalize_phone(e164, "US") == e164  # idempotent, whatever the default region


@given(st.text(), st.sampled_from(["US", "GB", "DE", "zz", ""]))
def test_never_raises_anything_but_invalid_phone(raw: str, region: str) -> None:
    try:
        result = normalize_phone(raw, region)
    except InvalidPhone as exc:
        assert exc.reason in {"phone_unparseable", "phone_invalid"}
    else:
        assert result.startswith("+") and result[1:].isdigit()


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-0100", "US", "+14155550100"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "gb", "+442079460958"),
        ("+1 415 555 0100 ext. 12", "DE", "+14155550100"),
    ],
)
def test_examples(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [("call me", "US", "phone_unparseable"), ("415 555 0100", "", "phone_unparseable"), ("123", "US", "phone_invalid")],
)
def test_rejections_carry_a_reason(raw: str, region: str, reason: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(raw, region)
    assert caught.value.reason == reason
