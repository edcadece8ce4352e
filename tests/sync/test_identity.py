"""The tie rules as a pure function: order-independent, phones weaker than emails, hubs tie nothing."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from sync.identity import RecordView, components


def rec(i: int, *keys: str, phones: tuple[str, ...] = ()) -> RecordView:
    return RecordView(i, frozenset(keys), frozenset(f"phone:{p}" for p in phones))


def people(
    records: list[RecordView], loose: tuple[str, ...] = (), hubs: frozenset[str] = frozenset()
) -> set[frozenset[str]]:
    return set(components(records, loose, hubs))


def test_a_record_listing_two_addresses_ties_them_and_its_own_id() -> None:
    out = people([rec(1, "email:a@x.test", "email:b@y.test", "ref:crm:1")], ("email:c@z.test",))
    assert out == {frozenset({"email:a@x.test", "email:b@y.test", "ref:crm:1"}), frozenset({"email:c@z.test"})}


def test_records_sharing_an_address_are_one_person() -> None:
    out = people([rec(1, "email:a@x.test", "ref:crm:1"), rec(2, "email:a@x.test", "ref:book:9")])
    assert out == {frozenset({"email:a@x.test", "ref:crm:1", "ref:book:9"})}


def test_two_people_on_one_switchboard_line_do_not_merge() -> None:
    out = people(
        [rec(1, "email:a@x.test", "ref:c:1", phones=("+1415",)), rec(2, "email:b@x.test", "ref:c:2", phones=("+1415",))]
    )
    assert len(out) == 2


def test_a_phone_only_record_joins_the_one_person_with_that_phone() -> None:
    out = people([rec(1, "email:a@x.test", "ref:c:1", phones=("+1415",)), rec(2, "ref:c:2", phones=("+1415",))])
    assert out == {frozenset({"email:a@x.test", "ref:c:1", "ref:c:2"})}


def test_a_phone_only_record_between_two_people_joins_neither() -> None:
    out = people(
        [
            rec(1, "email:a@x.test", "ref:c:1", phones=("+1415",)),
            rec(2, "email:b@x.test", "ref:c:2", phones=("+1415",)),
            rec(3, "ref:c:3", phones=("+1415",)),
        ]
    )
    assert frozenset({"ref:c:3"}) in out and len(out) == 3


def test_a_hub_address_ties_nothing() -> None:
    hub = "email:info@x.test"
    out = people([rec(1, hub, "ref:c:1"), rec(2, hub, "ref:c:2")], hubs=frozenset({hub}))
    assert out == {frozenset({hub}), frozenset({"ref:c:1"}), frozenset({"ref:c:2"})}


keys = st.sampled_from([f"email:p{i}@x.test" for i in range(6)] + [f"ref:c:{i}" for i in range(6)])
phones = st.sampled_from(["+1", "+2", "+3"])
records = st.lists(
    st.tuples(st.frozensets(keys, min_size=1, max_size=3), st.frozensets(phones, max_size=2)), max_size=8
)


@given(records, st.randoms())
def test_the_partition_does_not_depend_on_record_order(
    raw: list[tuple[frozenset[str], frozenset[str]]], rnd: random.Random
) -> None:
    views = [RecordView(i, k, frozenset(f"phone:{p}" for p in ph)) for i, (k, ph) in enumerate(raw)]
    shuffled = list(views)
    rnd.shuffle(shuffled)
    assert people(views) == people(shuffled)


@given(records)
def test_every_key_is_in_exactly_one_person(raw: list[tuple[frozenset[str], frozenset[str]]]) -> None:
    views = [RecordView(i, k, frozenset(f"phone:{p}" for p in ph)) for i, (k, ph) in enumerate(raw)]
    out = components(views, ())
    seen = [k for person in out for k in person]
    assert len(seen) == len(set(seen)) == len({k for v in views for k in v.keys})
