"""Requests copied from one library-built template are the library's own requests, id for id."""

from __future__ import annotations

from typing import Any

from googleapiclient.http import BatchHttpRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.gmail import MESSAGE_FIELDS, METADATA_HEADERS
from connectors.google_batch import by_template
from tests.connectors.test_connectors_batch_body import gmail_service


def message_get(messages: Any) -> Any:
    def get(message_id: str) -> Any:
        return messages.get(
            userId="me", id=message_id, format="metadata", metadataHeaders=METADATA_HEADERS, fields=MESSAGE_FIELDS
        )

    return get


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=4))
def test_a_templated_get_is_the_librarys_request_for_any_id(message_ids: list[str]) -> None:
    get = message_get(gmail_service("tok").users().messages())
    templated = by_template(get)
    for message_id in message_ids:
        ours, theirs = templated(message_id), get(message_id)
        assert (ours.uri, ours.method, ours.headers, ours.body, ours.methodId) == (
            theirs.uri, theirs.method, theirs.headers, theirs.body, theirs.methodId,
        )  # fmt: skip
        assert BatchHttpRequest()._serialize_request(ours) == BatchHttpRequest()._serialize_request(theirs)


def test_templated_requests_do_not_share_headers_or_callbacks() -> None:
    templated = by_template(message_get(gmail_service("tok").users().messages()))
    first, second = templated("a"), templated("b")
    first.headers["authorization"] = "Bearer x"
    first.add_response_callback(lambda response: None)
    assert "authorization" not in second.headers and second.response_callbacks == []


def test_a_request_with_a_body_is_built_by_the_library_each_time() -> None:
    messages = gmail_service("tok").users().messages()

    def modify(message_id: str) -> Any:
        return messages.modify(userId="me", id=message_id, body={"addLabelIds": ["X"]})

    assert by_template(modify) is modify
