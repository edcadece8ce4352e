"""Mapping Gmail `format=metadata` messages (shaped per the discovery document) to observations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectors.addresses import parse_address_list
from connectors.base import ActivityObservation, Deletion, Participant
from connectors.gmail_mapping import CACHED_VALUE_MAX, address_list, dedupe_key, map_message

INTERNAL_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def message(headers: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "18c2f0a1b2c3d4e5",
        "threadId": "18c2f0a1b2c3d4e5",
        "labelIds": ["INBOX", "CATEGORY_PERSONAL"],
        "internalDate": str(INTERNAL_MS),
        "payload": {
            "partId": "",
            "mimeType": "text/plain",
            "filename": "",
            "headers": [{"name": n, "value": v} for n, v in headers],
            "body": {"size": 0},
        },
    }
    body.update(extra)
    return body


BASIC = [
    ("From", '"Reyes, Dana" <Dana@Globex.test>'),
    ("To", "Alice <alice@acme.test>, bob@acme.test"),
    ("Cc", "=?UTF-8?B?Sm9zw6kgTsO6w7Fleg==?= <jose@initech.test>"),
    ("Bcc", "carol@acme.test"),
    ("Reply-To", "assistant@globex.test"),
    ("Date", "Tue, 3 Mar 2026 09:15:00 -0500"),
    ("Message-ID", " <CAF=abc.123@mail.globex.test> "),
    ("Subject", "=?UTF-8?Q?Q3_pricing_=E2=80=94_draft?="),
]


def mapped(headers: list[tuple[str, str]], **extra: Any) -> ActivityObservation:
    result = map_message(message(headers, **extra))
    assert isinstance(result.observation, ActivityObservation)
    return result.observation


def test_a_plain_message_maps_every_field() -> None:
    result = map_message(message(BASIC))
    assert result.rejections == []
    assert result.observation == ActivityObservation(
        source="gmail",
        external_id="18c2f0a1b2c3d4e5",
        kind="email",
        dedupe_key="CAF=abc.123@mail.globex.test",
        occurred_at=datetime(2026, 3, 3, 14, 15, tzinfo=UTC),
        participants=(
            Participant("from", "dana@globex.test", "Reyes, Dana"),
            Participant("to", "alice@acme.test", "Alice"),
            Participant("to", "bob@acme.test"),
            Participant("cc", "jose@initech.test", "José Núñez"),
            Participant("bcc", "carol@acme.test"),
        ),
        noise=None,
        subject="Q3 pricing — draft",
        malformed_from=False,
    )


def test_a_recurring_address_list_is_parsed_once_and_a_long_one_every_time() -> None:
    short = "Ann Lee <ann@x.test>, bob@x.test, (only a comment)"
    assert address_list(short) is address_list(short)
    assert address_list(short) == parse_address_list(short)
    long = ", ".join(f"person{i}@x.test" for i in range(100))
    assert len(long) > CACHED_VALUE_MAX
    assert address_list(long) is not address_list(long)
    assert address_list(long) == parse_address_list(long)


def test_reply_to_is_never_a_participant() -> None:
    assert "assistant@globex.test" not in {p.email for p in mapped(BASIC).participants}


def test_missing_or_bad_date_falls_back_to_internal_date() -> None:
    internal = datetime(2026, 1, 1, tzinfo=UTC)
    without = [(n, v) for n, v in BASIC if n != "Date"]
    assert mapped(without).occurred_at == internal
    assert mapped([*without, ("Date", "sometime last week")]).occurred_at == internal


def test_no_date_at_all_is_a_rejection_not_a_crash() -> None:
    result = map_message(message([(n, v) for n, v in BASIC if n != "Date"], internalDate="soon"))
    assert result.observation is None
    assert [r.reason for r in result.rejections] == ["no_date"]


def test_malformed_addresses_are_rejected_one_by_one_and_neighbours_kept() -> None:
    headers = [*BASIC[:1], ("To", 'bob@@x, "unterminated <eve@x.test>, alice@acme.test, Reyes'), *BASIC[5:]]
    result = map_message(message(headers))
    assert isinstance(result.observation, ActivityObservation)
    assert [p.email for p in result.observation.participants if p.role == "to"] == ["alice@acme.test"]
    assert [(r.reason, r.detail) for r in result.rejections] == [
        ("ambiguous", "To: bob@@x"),
        ("unbalanced", 'To: "unterminated <eve@x.test>'),
        ("no_at", "To: Reyes"),
    ]
    assert {r.external_id for r in result.rejections} == {"18c2f0a1b2c3d4e5"}


def test_malformed_or_missing_from_is_flagged() -> None:
    others = [(n, v) for n, v in BASIC if n != "From"]
    assert mapped([("From", "Dana Reyes"), *others]).malformed_from
    assert mapped(others).malformed_from
    assert not mapped(BASIC).malformed_from


def test_each_role_and_address_once() -> None:
    headers = [("From", "a@x.test"), ("To", "b@y.test, B <B@Y.test>"), ("To", "b@y.test"), ("Cc", "b@y.test")]
    assert [(p.role, p.email, p.name) for p in mapped(headers).participants] == [
        ("from", "a@x.test", None),
        ("to", "b@y.test", None),
        ("cc", "b@y.test", None),
    ]


def test_noise_flags() -> None:
    assert mapped([("From", "GitHub <notifications@github.test>"), ("To", "a@acme.test")]).noise == "automated"
    assert mapped([*BASIC, ("List-Unsubscribe", "<mailto:x@globex.test>")]).noise == "list"
    assert mapped([*BASIC, ("Precedence", "bulk")]).noise == "bulk"
    crowd = ", ".join(f"p{i}@globex.test" for i in range(25))
    assert mapped([("From", "a@acme.test"), ("To", crowd)]).noise == "too_many"  # 26 people
    assert mapped([("From", "a@acme.test"), ("To", crowd.rpartition(",")[0])]).noise is None


def test_trash_spam_and_drafts_are_deletions() -> None:
    for label in ("TRASH", "SPAM", "DRAFT"):
        result = map_message(message(BASIC, labelIds=["INBOX", label]))
        assert result.observation == Deletion("gmail", "18c2f0a1b2c3d4e5")


def test_message_id_key_forms() -> None:
    assert dedupe_key({"message-id": ["<a.b@c>"]}) == "a.b@c"
    assert dedupe_key({"message-id": ["  <a.b@\r\n c>  "]}) == "a.b@c"
    assert dedupe_key({"message-id": ["a.b@c"]}) == "a.b@c"
    assert dedupe_key({"message-id": ["<first@x> <second@y>"]}) == "first@x"


def test_missing_message_id_gets_a_synthetic_key_shared_by_copies() -> None:
    without = [(n, v) for n, v in BASIC if n != "Message-ID"]
    sender_copy = mapped([*without, ("Bcc", "carol@acme.test")])
    recipient_copy = mapped([(n, v) for n, v in without if n != "Bcc"], id="other", labelIds=["INBOX"])
    assert sender_copy.dedupe_key.startswith("synthetic:")
    assert sender_copy.dedupe_key == recipient_copy.dedupe_key
    assert mapped([*without, ("Message-ID", "<>")]).dedupe_key == sender_copy.dedupe_key
    assert mapped([*without[:-1], ("Subject", "other")]).dedupe_key != sender_copy.dedupe_key


def test_no_subject_is_none() -> None:
    assert mapped([(n, v) for n, v in BASIC if n != "Subject"]).subject is None


def test_records_without_an_id_are_rejected() -> None:
    result = map_message({"payload": {}})
    assert result.observation is None and [r.reason for r in result.rejections] == ["no_id"]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.text(max_size=5) | JSONISH,
            "labelIds": st.lists(st.sampled_from(["INBOX", "TRASH", "SENT"]) | JSONISH, max_size=3) | JSONISH,
            "internalDate": st.integers(-(10**16), 10**16).map(str) | JSONISH,
            "payload": st.fixed_dictionaries(
                {},
                optional={
                    "headers": st.lists(
                        st.fixed_dictionaries(
                            {
                                "name": st.sampled_from(["From", "To", "Cc", "Date", "Message-ID", "Subject"])
                                | JSONISH,
                                "value": st.text(max_size=40) | JSONISH,
                            }
                        ),
                        max_size=6,
                    )
                    | JSONISH
                },
            )
            | JSONISH,
        },
    )
)
def test_weird_records_never_raise(record: dict[str, Any]) -> None:
    result = map_message(record)
    assert result.observation is not None or result.rejections
