"""One focused test per product bug the corpus found (issue 7, B1), so each fix stays fixed on its own."""

from __future__ import annotations

from connectors.addresses import parse_address_list
from connectors.encoded_words import decode_header_text


def test_thousands_of_nested_comments_are_refused_not_a_recursion_error() -> None:
    result = parse_address_list("(" * 3000 + ")" * 3000 + " ann@x.test, ben@y.test")
    assert [a.email for a in result.addresses] == ["ben@y.test"]
    assert [b.reason for b in result.rejected] == ["too_complex"]


def test_an_entry_of_only_comments_is_empty_not_rejected() -> None:
    result = parse_address_list("(Empty list)(start)Undisclosed recipients  :(nobody(I know))")
    assert result.addresses == () and result.rejected == ()


def test_a_character_split_across_adjacent_encoded_words_is_decoded_whole() -> None:
    assert decode_header_text("=?utf-8?q?caf=C3?= =?utf-8?q?=A9?=") == "café"
    assert decode_header_text("=?UTF-8?B?8J+a?= =?utf-8?B?gA==?= go") == "🚀 go"
    assert decode_header_text("=?utf-8?q?a?= =?iso-8859-1?q?=E9?=") == "aé"  # different charsets: decoded apart
