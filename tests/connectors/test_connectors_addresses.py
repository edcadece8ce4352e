"""Email normalization and address-list parsing: properties (hypothesis) and the CPython parser pitfalls."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from connectors.addresses import Address, parse_address_list
from connectors.emails import InvalidAddress, normalize_email

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
LOCAL = st.text(ATEXT + ".", min_size=1, max_size=20)
DOMAIN = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(LABEL, min_size=1, max_size=3),
    st.from_regex(r"[a-z]{2,6}", fullmatch=True),
)
EMAIL = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN)
NAME = st.from_regex(r"[A-Za-z][A-Za-z .,'-]{0,20}[A-Za-z]", fullmatch=True)
JUNK = st.text() | st.text(alphabet='"(),;:<>@\\ ab.=?', max_size=16)  # the parser's special characters


def entry_for(email: str, name: str | None, form: int) -> str:
    """One valid address-list entry in a common spelling."""
    if name is None or form == 0:
        return email
    if form == 1:
        return f'"{name}" <{email}>'
    if form == 2:
        return f"{email} ({name.replace(',', '')})"
    return f"{name.replace(',', '').replace('.', '')} <{email}>"


# -- normalize_email ---------------------------------------------------------------------------------


@given(st.text())
@example('"alice@example.org"@evil.test')
@example("a@b@c.test")
@example("x@\ud800.test")
def test_normalize_email_never_raises_anything_but_invalid_address(raw: str) -> None:
    try:
        normalized = normalize_email(raw)
    except InvalidAddress as exc:
        assert exc.reason in {"empty", "no_at", "bad_local_part", "bad_domain", "too_long"}
        assert isinstance(exc, ValueError)
    else:
        assert normalize_email(normalized) == normalized  # idempotent


@given(EMAIL, st.text(" \t\r\n", max_size=3), st.text(" \t\r\n", max_size=3))
def test_case_and_surrounding_whitespace_do_not_matter(email: str, before: str, after: str) -> None:
    try:
        expected = normalize_email(email)
    except InvalidAddress:
        assume(False)
        raise
    assert normalize_email(before + email.upper() + after) == expected
    assert expected == expected.strip().lower()


@given(LOCAL, DOMAIN)
def test_no_dot_or_plus_folding(local: str, domain: str) -> None:
    assume(len(local) <= 64)
    assert normalize_email(f"{local}@{domain}").partition("@")[0] == local.lower()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Alice.Smith+tag@Example.COM ", "alice.smith+tag@example.com"),
        ("jörg@Bücher.Example", "jörg@xn--bcher-kva.example"),
        ("info@xn--bcher-kva.example", "info@xn--bcher-kva.example"),
        ("a@example.com.", "a@example.com"),
    ],
)
def test_normalize_email_examples(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("Bob Smith", "no_at"),
        ("@example.com", "bad_local_part"),
        ('"alice@example.org"@evil.test', "bad_local_part"),
        ("bob smith@example.com", "bad_local_part"),
        ("bob@", "bad_domain"),
        ("bob@localhost", "bad_domain"),
        ("bob@[10.0.0.1]", "bad_domain"),
        ("bob@1.2.3.4", "bad_domain"),
        ("bob@exa_mple.com", "bad_domain"),
        ("bob@-x.com", "bad_domain"),
        ("x" * 65 + "@example.com", "too_long"),
    ],
)
def test_normalize_email_rejections(raw: str, reason: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        normalize_email(raw)
    assert caught.value.reason == reason


# -- parse_address_list: properties ----------------------------------------------------------------


@given(JUNK)
@example('"a, (b" <c@d.test>, "e')
@example("(((((((((((")
@example('"' * 50)
def test_parse_never_raises_and_only_returns_normalized_addresses(value: str) -> None:
    result = parse_address_list(value)
    for address in result.addresses:
        assert normalize_email(address.email) == address.email
        assert address.name is None or (address.name == address.name.strip() and address.name)
    for bad in result.rejected:
        assert bad.reason and bad.raw == bad.raw.strip() and bad.raw


@given(
    st.lists(st.tuples(EMAIL, st.none() | NAME, st.integers(0, 3)), min_size=1, max_size=4),
    JUNK,
    st.integers(0, 4),
    st.sampled_from([", ", ",", "; "]),
)
@example([("a@b.test", "Doe, John", 1)], '"junk', 0, ", ")
@example([("a@b.test", "Doe, John", 1), ("c@d.test", "Roe, Jane", 1)], '"junk', 1, ", ")
@example([("a@b.test", "Bob", 2)], "(junk", 0, ", ")
@example([("a@b.test", None, 0)], "alice@example.org)<bob@example.org>", 0, ", ")
@example([("a@b.test", None, 0)], '"alice@example.org"@evil.test', 1, ", ")
def test_valid_addresses_survive_a_malformed_neighbour(
    valid: list[tuple[str, str | None, int]], junk: str, position: int, separator: str
) -> None:
    expected = []
    for email, _, _ in valid:
        try:
            expected.append(normalize_email(email))
        except InvalidAddress:
            assume(False)
    entries = [entry_for(email, name, form) for email, name, form in valid]
    entries.insert(min(position, len(entries)), junk)
    found = [address.email for address in parse_address_list(separator.join(entries)).addresses]
    for email in expected:
        assert email in found


@given(st.lists(st.tuples(EMAIL, st.none() | NAME, st.integers(0, 3)), min_size=1, max_size=5))
def test_a_clean_list_parses_in_order_with_its_names(valid: list[tuple[str, str | None, int]]) -> None:
    emails = []
    for email, _, _ in valid:
        try:
            emails.append(normalize_email(email))
        except InvalidAddress:
            assume(False)
    result = parse_address_list(", ".join(entry_for(e, n, f) for e, n, f in valid))
    assert [a.email for a in result.addresses] == emails
    assert result.rejected == ()


# -- parse_address_list: the pitfalls, one by one ----------------------------------------------------


def emails(value: str) -> list[str]:
    return [address.email for address in parse_address_list(value).addresses]


def reasons(value: str) -> list[str]:
    return [bad.reason for bad in parse_address_list(value).rejected]


def test_cve_2023_27043_quoted_address_as_local_part_is_not_the_inner_address() -> None:
    assert emails('"alice@example.org"@evil.test, carol@x.test') == ["carol@x.test"]
    assert reasons('"alice@example.org"@evil.test') == ["bad_local_part"]


@pytest.mark.parametrize("glue", list('()<>@."[]'))
def test_cve_2023_27043_junk_glued_to_an_address_yields_neither_address(glue: str) -> None:
    result = parse_address_list(f"alice@example.org{glue}<bob@example.org>, carol@x.test")
    assert [a.email for a in result.addresses] == ["carol@x.test"]
    assert [bad.raw for bad in result.rejected] == [f"alice@example.org{glue}<bob@example.org>"]


def test_separators_and_group_colon_between_addresses() -> None:
    assert emails("alice@example.org;<bob@example.org>") == ["alice@example.org", "bob@example.org"]
    assert emails("alice@example.org:<bob@example.org>") == ["bob@example.org"]  # a group named alice...


def test_glued_text_is_not_concatenated_into_a_new_address() -> None:
    assert emails("bob@x.test Bob") == []
    assert reasons("bob@x.test Bob") == ["ambiguous"]
    assert emails("<bob@x.test> Bob, ok@y.test") == ["ok@y.test"]


def test_bpo_37764_style_broken_encoded_words_do_not_crash() -> None:
    for value in ("=?", "=?UTF-8?Q?", "=?utf-8?q?=?= <a@b.test>", "=?UTF-8?B?w5x?==?UTF-8?Q?", "=?=?=?"):
        parse_address_list(value)
    assert parse_address_list("=?utf-8?b?!!!?= <a@b.test>").addresses == (Address("a@b.test", None),)


@pytest.mark.parametrize("group", ["undisclosed-recipients:;", "undisclosed-recipients: ;", "Team:;"])
def test_empty_groups_give_nothing_and_reject_nothing(group: str) -> None:
    assert parse_address_list(group).addresses == ()
    assert parse_address_list(group).rejected == ()


def test_group_members_count_and_the_group_name_does_not() -> None:
    assert emails("Sales Team: a@x.test, B <b@y.test>;, c@z.test") == ["a@x.test", "b@y.test", "c@z.test"]


def test_comments_name_a_bare_address_and_stay_in_a_display_name() -> None:
    result = parse_address_list("a@x.test (Alice Adams), Bob (work) <b@y.test>")
    assert result.addresses == (Address("a@x.test", "Alice Adams"), Address("b@y.test", "Bob (work)"))


def test_quoted_names_with_commas_stay_one_entry() -> None:
    result = parse_address_list('"Doe, John" <john@x.test>, "Roe, Jane" <jane@y.test>')
    assert result.addresses == (Address("john@x.test", "Doe, John"), Address("jane@y.test", "Roe, Jane"))


def test_unquoted_comma_name_loses_only_the_surname_fragment() -> None:
    result = parse_address_list("Reyes, Dana <dana@globex.test>")
    assert result.addresses == (Address("dana@globex.test", "Dana"),)
    assert [(bad.raw, bad.reason) for bad in result.rejected] == [("Reyes", "no_at")]


@pytest.mark.parametrize(
    "broken", ["Alice <alice@x.test", "alice@x.test>", '"unterminated <alice@x.test>', "<<alice@x.test>"]
)
def test_unbalanced_brackets_and_quotes_reject_only_their_entry(broken: str) -> None:
    result = parse_address_list(f"{broken}, ok@y.test, Zed <z@z.test>")
    assert [a.email for a in result.addresses] == ["ok@y.test", "z@z.test"]
    assert [bad.reason for bad in result.rejected] == ["unbalanced"]


def test_an_unclosed_comment_or_quote_does_not_swallow_the_rest() -> None:
    assert emails('a@x.test, (oops, b@y.test (Bee), "Doe, J" <j@z.test>') == ["a@x.test", "b@y.test", "j@z.test"]
    assert emails('"A" <a@x.test>, "oops, "B, C" <b@y.test>') == ["a@x.test", "b@y.test"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Bob Smith", "no_at"),
        ("Bob", "no_at"),
        ("bob@@x.test", "ambiguous"),
        ("<>", "no_address"),
        ("@x.test", "bad_local_part"),
        ("bob@", "no_address"),
    ],
)
def test_bare_names_and_broken_addresses_are_rejected_with_a_reason(value: str, reason: str) -> None:
    result = parse_address_list(f"{value}, ok@y.test")
    assert [a.email for a in result.addresses] == ["ok@y.test"]
    assert [bad.reason for bad in result.rejected] == [reason]


def test_outlook_semicolons_separate() -> None:
    assert emails("a@x.test; B <b@y.test>;c@z.test") == ["a@x.test", "b@y.test", "c@z.test"]


def test_address_repeated_as_its_own_name_is_one_address_without_name() -> None:
    assert parse_address_list("alice@example.com <alice@example.com>").addresses == (
        Address("alice@example.com", None),
    )
    assert parse_address_list('"Alice@Example.com" <alice@example.com>').addresses == (
        Address("alice@example.com", None),
    )


def test_two_different_addresses_in_one_entry_are_ambiguous() -> None:
    assert reasons("alice@example.org <bob@evil.test>") == ["ambiguous"]


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("=?UTF-8?B?w5xsZmV0IMOWemTDvHJr?= <u@x.test>", "Ülfet Özdürk"),
        ("=?iso-8859-1?Q?Andr=E9?= Pirard <ap@x.test>", "André Pirard"),
        ('"=?UTF-8?Q?Jos=C3=A9_N=C3=BA=C3=B1ez?=" <j@x.test>', "José Núñez"),
        ("=?UTF-8?Q?Ann?= =?UTF-8?Q?e?= <a@x.test>", "Anne"),
        ("'Single Quoted' <s@x.test>", "Single Quoted"),
        ('"  Lots \t of   space " <s@x.test>', "Lots of space"),
        ("=?utf-8?B?!!notbase64?= <b@x.test>", "=?utf-8?B?!!notbase64?="),
        ("=?x-unknown?Q?caf=C3=A9?= <c@x.test>", "café"),
    ],
)
def test_display_names_are_decoded_unquoted_and_collapsed(value: str, name: str) -> None:
    (address,) = parse_address_list(value).addresses
    assert address.name == name
