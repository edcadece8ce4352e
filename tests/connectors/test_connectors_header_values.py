"""Date headers, RFC 2047 decoding, noise classification and Retry-After: the small pure helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.dates import parse_date_header
from connectors.encoded_words import decode_header_text
from connectors.noise import classify_noise, is_automated
from connectors.retry_after import backoff_hint, retry_after_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mon, 2 Mar 2026 10:00:00 +0100", datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
        ("2 Mar 2026 10:00:00 -0500 (EST)", datetime(2026, 3, 2, 15, 0, tzinfo=UTC)),
        ("Mon, 2 Mar 2026 10:00:00 -0000", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),  # naive: UTC
    ],
)
def test_dates_become_aware_utc(value: str, expected: datetime) -> None:
    parsed = parse_date_header(value)
    assert parsed == expected and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "  ",
        "Today 10:15",
        "Mon, 32 Foo 2026 25:61:00 +0000",
        "sometime last week",
        "2026-13-45T99:00:00",
        "Thu, 31 Dec 9999 23:59:59 -1200",
    ],
)
def test_unparseable_dates_are_none(value: str | None) -> None:
    assert parse_date_header(value) is None


@given(st.text())
def test_date_parsing_never_raises(value: str) -> None:
    parsed = parse_date_header(value)
    assert parsed is None or parsed.tzinfo is UTC


@given(st.text())
def test_decoding_never_raises_and_collapses_whitespace(value: str) -> None:
    decoded = decode_header_text(value)
    assert decoded == " ".join(decoded.split())


def test_decoding_examples() -> None:
    assert decode_header_text("=?UTF-8?B?8J+agCBMYXVuY2g=?= plan") == "🚀 Launch plan"
    assert decode_header_text("Re: =?iso-8859-1?Q?caf=E9?=\r\n\t=?iso-8859-1?Q?_cr=E8me?=") == "Re: café crème"
    assert decode_header_text("=?utf-8*en?q?hello?=") == "hello"  # RFC 2231 language tag
    assert decode_header_text("plain  text\n") == "plain text"


@pytest.mark.parametrize(
    "email",
    [
        "noreply@x.test",
        "no-reply@x.test",
        "donotreply@x.test",
        "do-not-reply@x.test",
        "mailer-daemon@x.test",
        "postmaster@x.test",
        "bounce@x.test",
        "bounces+abc123@x.test",
        "notifications@x.test",
    ],
)
def test_automated_senders(email: str) -> None:
    assert is_automated(email)
    assert classify_noise([email], {}, 2) == "automated"


def test_people_are_not_automated() -> None:
    assert not is_automated("noreplyfan@x.test")
    assert not is_automated("nora@noreply.test")
    assert classify_noise(["dana@globex.test"], {}, 25) is None


@pytest.mark.parametrize(
    ("headers", "noise"),
    [
        ({"list-id": "<news.globex.test>"}, "list"),
        ({"list-unsubscribe": "<mailto:u@globex.test>"}, "list"),
        ({"precedence": " Bulk "}, "bulk"),
        ({"precedence": "junk"}, "bulk"),
        ({"precedence": "list"}, "bulk"),
        ({"precedence": "first-class"}, None),
        ({"list-id": "  "}, None),
    ],
)
def test_list_and_bulk_headers(headers: dict[str, str], noise: str | None) -> None:
    assert classify_noise(["dana@globex.test"], headers, 2) == noise


def test_more_than_25_participants_is_noise() -> None:
    assert classify_noise(["dana@globex.test"], {}, 26) == "too_many"


def test_retry_after_values() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("Thu, 01 Jan 2026 00:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Wed, 31 Dec 2025 00:00:00 GMT", now=now) == 0.0
    for junk in (None, "", "soon", "nan", "inf", "-3"):
        assert retry_after_seconds(junk, attempt=2) == backoff_hint(2) == 4.0
    assert backoff_hint(30) == 300.0
