"""Signed tokens: round trip, tampering, purpose binding, expiry and distinct error classes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokens.signed import BadSignature, Expired, InvalidToken, sign, verify

KEY = b"k" * 32
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_round_trip_is_compact_and_url_safe() -> None:
    token = sign({"org": "acme", "email": "alice@acme.test"}, "connect-session", 3600, KEY, now=T0)
    assert len(token) < 200
    assert all(c.isalnum() or c in "-_." for c in token)
    assert verify(token, "connect-session", KEY, now=T0 + timedelta(minutes=59)) == {
        "org": "acme", "email": "alice@acme.test"}


def test_error_classes_are_distinct_invalid_tokens() -> None:
    assert issubclass(BadSignature, InvalidToken) and issubclass(Expired, InvalidToken)
    assert not issubclass(BadSignature, Expired) and not issubclass(Expired, BadSignature)


def test_tampered_body_or_signature_is_refused() -> None:
    token = sign({"n": "abc", "p": "google"}, "oauth-state", 600, KEY, now=T0)
    body, mac = token.split(".")
    forged_body = sign({"n": "abc", "p": "hubspot"}, "oauth-state", 600, b"x" * 32, now=T0).split(".")[0]
    for bad in (f"{forged_body}.{mac}", f"{body}.{mac[:-2]}AA", f"{body[:-1]}A.{mac}", f"{body}.", token + "."):
        with pytest.raises(BadSignature):
            verify(bad, "oauth-state", KEY, now=T0)


@pytest.mark.parametrize("garbage", ["", ".", "a.b", "no-dot", "é.é", "x" * 5000, "a.b.c"])
def test_garbage_is_a_bad_signature(garbage: str) -> None:
    with pytest.raises(BadSignature):
        verify(garbage, "oauth-state", KEY, now=T0)


def test_wrong_key_is_refused() -> None:
    token = sign({"n": "abc"}, "oauth-state", 600, KEY, now=T0)
    with pytest.raises(BadSignature):
        verify(token, "oauth-state", b"other" * 8, now=T0)


def test_a_state_is_not_a_connect_session_link_and_vice_versa() -> None:
    state = sign({"n": "abc", "p": "google"}, "oauth-state", 600, KEY, now=T0)
    link = sign({"org": "acme", "email": "a@acme.test"}, "connect-session", 3600, KEY, now=T0)
    with pytest.raises(BadSignature):
        verify(state, "connect-session", KEY, now=T0)
    with pytest.raises(BadSignature):
        verify(link, "oauth-state", KEY, now=T0)


def test_expiry_with_injected_now() -> None:
    token = sign({"n": "abc"}, "oauth-state", 600, KEY, now=T0)
    assert verify(token, "oauth-state", KEY, now=T0 + timedelta(seconds=599)) == {"n": "abc"}
    with pytest.raises(Expired):
        verify(token, "oauth-state", KEY, now=T0 + timedelta(seconds=600))
    with pytest.raises(Expired):
        verify(token, "oauth-state", KEY, now=T0 + timedelta(days=3))


def test_expired_and_tampered_is_a_bad_signature_not_expired() -> None:
    token = sign({"n": "abc"}, "oauth-state", 600, KEY, now=T0)
    with pytest.raises(BadSignature):
        verify(token[:-3] + "AAA", "oauth-state", KEY, now=T0 + timedelta(days=1))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        sign({}, "oauth-state", 0, KEY)
    with pytest.raises(ValueError):
        sign({}, "", 10, KEY)
