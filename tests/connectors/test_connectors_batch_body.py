"""QuickBatch writes every batch part byte for byte as googleapiclient's own serializer does."""

from __future__ import annotations

from typing import Any

import google.oauth2.credentials
import google_auth_httplib2
import httplib2
from googleapiclient.discovery import build
from googleapiclient.http import BatchHttpRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.batch_body import QuickBatch
from connectors.gmail import MESSAGE_FIELDS, METADATA_HEADERS


def gmail_service(token: str) -> Any:
    """The Gmail client as connectors.google_http builds it (static discovery, an authorized Http)."""
    credentials = google.oauth2.credentials.Credentials(token=token)  # type: ignore[no-untyped-call]
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(), refresh_status_codes=())
    return build("gmail", "v1", static_discovery=True, http=http, client_options={"api_endpoint": "https://x.test/"})


ids = st.text(min_size=1, max_size=24)
tokens = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(ids, tokens, st.lists(st.sampled_from(METADATA_HEADERS), max_size=4))
def test_a_get_part_is_the_librarys_text_exactly(message_id: str, token: str, headers: list[str]) -> None:
    request = (
        gmail_service(token)
        .users()
        .messages()
        .get(userId="me", id=message_id, format="metadata", metadataHeaders=headers, fields=MESSAGE_FIELDS)
    )
    ours = QuickBatch()._serialize_request(request)
    theirs = BatchHttpRequest()._serialize_request(request)
    assert ours == theirs


def test_a_part_with_a_body_or_an_odd_header_is_left_to_the_library() -> None:
    service = gmail_service("tok")
    with_body = service.users().messages().modify(userId="me", id="m1", body={"addLabelIds": ["X"]})
    assert QuickBatch()._serialize_request(with_body) == BatchHttpRequest()._serialize_request(with_body)
    odd = service.users().messages().get(userId="me", id="m1")
    odd.headers["x-note"] = "caf\u00e9"
    assert QuickBatch()._serialize_request(odd) == BatchHttpRequest()._serialize_request(odd)
