"""PKCE: the RFC 7636 Appendix B vector and the verifier grammar."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokens.pkce import is_valid_verifier, make_verifier, s256_challenge


def test_rfc7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@given(st.integers(min_value=43, max_value=128))
def test_verifiers_follow_the_grammar(length: int) -> None:
    verifier = make_verifier(length)
    assert len(verifier) == length
    assert re.fullmatch(r"[A-Za-z0-9\-._~]+", verifier)
    assert len(s256_challenge(verifier)) == 43


def test_verifiers_are_random() -> None:
    assert len({make_verifier() for _ in range(50)}) == 50


@pytest.mark.parametrize("length", [0, 42, 129])
def test_out_of_range_lengths_are_refused(length: int) -> None:
    with pytest.raises(ValueError):
        make_verifier(length)


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, "a" * 42 + "+", "a" * 43 + " ", "é" * 43])
def test_invalid_verifiers(verifier: str) -> None:
    assert not is_valid_verifier(verifier)
    with pytest.raises(ValueError):
        s256_challenge(verifier)
