"""split_entries' fast path (no quotes, comments, quoted-pairs or groups) answers as the full scan does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connectors.address_split import Entry, _scanned_entries, split_entries

plain_headers = st.text(alphabet=st.sampled_from(list("ab.@ <>,;\t=?_-é1")), max_size=60)
any_headers = st.text(alphabet=st.sampled_from(list('ab.@ <>,;:"()\\\t=?é')), max_size=60)


@given(plain_headers)
def test_a_header_without_quotes_or_comments_splits_as_the_full_scan_does(value: str) -> None:
    assert split_entries(value) == _scanned_entries(value)


@given(any_headers)
def test_every_header_splits_as_the_full_scan_does(value: str) -> None:
    assert split_entries(value) == _scanned_entries(value)


def test_angle_brackets_that_do_not_pair_mark_only_their_entry() -> None:
    assert split_entries("A <a@x.test>, b@y.test>, <<c@z.test>>; d@w.test") == [
        Entry("A <a@x.test>", True),
        Entry(" b@y.test>", False),
        Entry(" <<c@z.test>>", False),
        Entry(" d@w.test", True),
    ]
