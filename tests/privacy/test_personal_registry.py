"""The personal-data registry covers every column that may hold a person's data, and only real columns."""

from __future__ import annotations

from models.personal import EXEMPT, REGISTRY, Erase
from models.tables import Base

# A column whose name has one of these words (split on "_", plural too) may hold personal data:
# it must be registered or exempted with a reason.
HINTS = (
    "email",
    "phone",
    "name",
    "value",
    "account",
    "detail",
    "subject",
    "company",
    "target",
    "actor",
    "ref",
    "key",
    "error",
    "domain",
    "external",
    "address",
    "text",
    "body",
)


def suggests_personal_data(column: str) -> bool:
    """Whether a column name has a word that hints at personal data."""
    words = column.lower().split("_")
    return any(word in HINTS or word.removesuffix("s") in HINTS for word in words)


def _columns() -> set[tuple[str, str]]:
    return {(t.name, c.name) for t in Base.metadata.sorted_tables for c in t.columns}


def _suggestive() -> set[tuple[str, str]]:
    return {(t, c) for t, c in _columns() if suggests_personal_data(c)}


def test_every_column_named_like_personal_data_is_registered_or_exempted_with_a_reason() -> None:
    registered = {(c.table, c.column) for c in REGISTRY}
    missing = sorted(_suggestive() - registered - set(EXEMPT))
    assert missing == [], f"register these in models/personal.py (or exempt them with a reason): {missing}"


def test_every_registered_or_exempted_column_exists() -> None:
    entries = {(c.table, c.column) for c in REGISTRY} | set(EXEMPT)
    assert sorted(entries - _columns()) == []


def test_a_column_is_either_registered_or_exempted_never_both_and_registered_once() -> None:
    registered = [(c.table, c.column) for c in REGISTRY]
    assert len(registered) == len(set(registered))
    assert set(registered) & set(EXEMPT) == set()


def test_exemptions_give_a_reason_and_only_cover_suggestive_names() -> None:
    assert all(len(reason) > 10 for reason in EXEMPT.values())
    assert set(EXEMPT) <= _suggestive(), "an exemption for a column no hint matches is dead weight"


def test_the_columns_the_privacy_policy_names_are_registered_for_erasure() -> None:
    registered = {(c.table, c.column): c for c in REGISTRY}
    for key in [
        ("participants", "email"),
        ("identities", "value"),
        ("contacts", "name"),
        ("members", "email"),
        ("connections", "account"),
        ("person_records", "emails"),
        ("person_records", "phones"),
        ("rejected", "detail"),
        ("audit_events", "details"),
    ]:
        assert key in registered, key
        assert isinstance(registered[key].erase, Erase)


def test_a_new_email_column_without_an_entry_would_fail_the_check() -> None:
    from sqlalchemy import Column, MetaData, String, Table

    extra = Table("newsletter_signups", MetaData(), Column("subscriber_email", String))
    names = {(extra.name, c.name) for c in extra.columns if suggests_personal_data(c.name)}
    assert names and not names <= ({(c.table, c.column) for c in REGISTRY} | set(EXEMPT))
