"""A Graph delta answer's entries: every one is an item, a removal or a rejection with its reason, none dropped."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectors.graph_delta import DeltaPage, split_entries

ids = st.one_of(st.text(min_size=1, max_size=12), st.just(""), st.none(), st.integers())
entries = st.one_of(
    st.fixed_dictionaries({"id": ids}, optional={"subject": st.text(max_size=5)}),
    st.fixed_dictionaries({"id": ids, "@removed": st.just({"reason": "deleted"})}),
    st.fixed_dictionaries({}, optional={"subject": st.text(max_size=5)}),
    st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)),
)


@given(st.lists(entries, max_size=20))
def test_every_delta_entry_is_an_item_a_removal_or_a_rejection(value: list[Any]) -> None:
    items, removed, malformed = split_entries(value, "graph messages/delta")
    assert len(items) + len(removed) + len(malformed) == len(value)
    assert all(isinstance(i["id"], str) and i["id"] and "@removed" not in i for i in items)
    assert all(isinstance(i, str) and i for i in removed)
    page = DeltaPage(items, removed, {}, True, False, malformed)
    rejections = page.rejected("outlook_mail")
    assert [r.reason for r in rejections] == ["no_id"] * len(malformed)
    assert all(r.source == "outlook_mail" and r.detail.startswith("graph messages/delta: ") for r in rejections)


def test_an_item_without_an_id_is_rejected_with_its_keys_not_dropped() -> None:
    value = [{"id": "A"}, {"subject": "hi", "from": {}}, {"id": "B", "@removed": {}}, {"@removed": {}}, "junk"]
    items, removed, malformed = split_entries(value, "graph messages/delta")
    assert [i["id"] for i in items] == ["A"] and removed == ["B"]
    assert malformed == [
        "graph messages/delta: item 1 has no id (keys: from, subject)",
        "graph messages/delta: removed entry 3 has no id (keys: @removed)",
        "graph messages/delta: entry 4 is a str, not an object",
    ]
