"""QuickBatch writes every batch byte for byte as googleapiclient does, and reads every answer as it does."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import google.oauth2.credentials
import google_auth_httplib2
import httplib2
import pytest
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.batch_body import QuickBatch, _parsed_answer, _split_answer
from connectors.gmail import BATCH_PATH, MESSAGE_FIELDS, METADATA_HEADERS
from sandbox.server import Sandbox
from sandbox.world import generate_world
from tests.connectors.conftest import access_token


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


class Recording(httplib2.Http):  # type: ignore[misc]  # httplib2 ships no type hints
    """The real transport, keeping the body and headers of each request it sends."""

    def __init__(self) -> None:
        super().__init__(timeout=10)
        self.sent: list[tuple[str, dict[str, str]]] = []

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        self.sent.append((body, dict(headers or {})))
        return super().request(uri, method=method, body=body, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def emulator() -> Iterator[tuple[Sandbox, str]]:
    """One Google emulator for the module (hypothesis runs many examples against it) and alice's token."""
    with Sandbox(generate_world(seed=1, size=300), tls=False) as sb:
        yield sb, access_token(sb, "alice@acme.test")


def run_batch(
    kind: type[BatchHttpRequest], emulator: tuple[Sandbox, str], message_ids: list[str], *, modify: bool = False
) -> tuple[tuple[str, dict[str, str]], Any]:
    """A batch of messages.get (and a modify with a body) through `kind` over real HTTP: what it sent, and
    what its callback was given with every answer as it read it (or how reading failed)."""
    sb, token = emulator
    wire = Recording()
    credentials = google.oauth2.credentials.Credentials(token=token)  # type: ignore[no-untyped-call]
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=wire, refresh_status_codes=())
    api_url = sb.google_settings()["GOOGLE_API_URL"]
    service = build("gmail", "v1", static_discovery=True, http=http, client_options={"api_endpoint": api_url})
    given: dict[str, Any] = {}

    def collect(request_id: str, response: Any, exception: HttpError | None) -> None:
        given[request_id] = (response, None if exception is None else (exception.status_code, exception.content))

    batch = kind(callback=collect, batch_uri=api_url + BATCH_PATH)
    batch._base_id = uuid.UUID(int=8)  # the Content-IDs' common part is random: the same for both
    messages = service.users().messages()
    for i in message_ids:
        batch.add(messages.get(userId="me", id=i, format="metadata", fields=MESSAGE_FIELDS), request_id=i)
    if modify:
        batch.add(messages.modify(userId="me", id=message_ids[0], body={"addLabelIds": ["STARRED"]}), request_id="m")
    random.seed(3)  # the boundary is random: the same for both
    try:
        batch.execute()
    except Exception as exc:  # e.g. the library's own Content-ID reading of a folded header
        return wire.sent[-1], (type(exc), str(exc))
    read = {k: (dict(r), r.status, r.reason, r.version, c) for k, (r, c) in batch._responses.items()}
    return wire.sent[-1], (given, read)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=5, unique=True), st.booleans())
def test_a_batch_is_sent_and_read_as_the_library_does(
    emulator: tuple[Sandbox, str], odd_ids: list[str], modify: bool
) -> None:
    """Byte for byte the same request (long ids fold their Content-ID, a body goes through the generator) and
    the same answers (the emulator echoes a folded Content-ID, which the library's parser reads)."""
    sb, _ = emulator
    with sb.google.lock:
        real = sorted(sb.google.mailbox("alice@acme.test").entries)[:3]
    ids = [*real, *(i for i in odd_ids if i not in real)]
    assert run_batch(QuickBatch, emulator, ids, modify=modify) == run_batch(
        BatchHttpRequest, emulator, ids, modify=modify
    )


def answer_text(parts: list[str], boundary: str, *, end: str) -> str:
    """A batch answer as Google writes it: CRLF lines, no preamble."""
    return f"--{boundary}\r\n" + f"\r\n--{boundary}\r\n".join(parts) + f"\r\n--{boundary}--{end}"


line_ends = st.sampled_from(["\r\n", "\r\n", "\r\n", "\n", "\r"])
header_names = st.sampled_from(["Content-Type", "Content-ID", "content-id", "Vary", "ETag", "X-Odd", "Status"])
header_values = st.text(st.characters(min_codepoint=9, max_codepoint=300), max_size=20)


@st.composite
def answer_parts(draw: st.DrawFn) -> str:
    """One answer part: its MIME headers, an HTTP status line, response headers, a body; now and then odd."""
    nl = draw(line_ends)
    mime = [("Content-Type", draw(st.sampled_from(["application/http", "application/http", "text/plain"])))]
    mime += draw(st.lists(st.tuples(header_names, header_values), max_size=2))
    mime.append(("Content-ID", f"<response-{draw(st.text(max_size=12))}>"))
    status = draw(st.sampled_from(["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.0 503 Service Unavailable"]))
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=3))
    body = draw(st.text(max_size=40))
    lines = [f"{k}: {v}" if draw(st.integers(0, 9)) else f" {v}" for k, v in mime]  # now and then folded
    head = [f"{k}: {v}" for k, v in headers]
    return nl.join([*lines, "", status, *head, "", body])


@settings(max_examples=300, deadline=None)
@given(st.lists(answer_parts(), min_size=1, max_size=4), st.sampled_from(["batch_x1", "b'(+)_,-./:=?"]), st.data())
def test_an_answer_is_split_as_the_library_reads_it(parts: list[str], boundary: str, data: st.DataObject) -> None:
    """Where QuickBatch splits an answer itself it gives the parts the library's reading gives; the rest
    (another shape) it leaves to that reading. Each part reads as the library's `_deserialize_response`."""
    quoted = data.draw(st.booleans())
    content_type = f'multipart/mixed; boundary="{boundary}"' if quoted else f"multipart/mixed; boundary={boundary}"
    text = answer_text(parts, boundary, end=data.draw(st.sampled_from(["", "\r\n", "\r\n\r\n", "\n"])))
    if data.draw(st.booleans()):
        text = data.draw(st.sampled_from(["preamble\r\n", "", "--" + boundary + "\r\n"])) + text
    resp = httplib2.Response({"status": "200", "content-type": content_type})
    theirs = _parsed_answer(resp, text)
    ours = _split_answer(content_type, text)
    assert ours is None or ours == theirs
    for _, payload in theirs:
        assert read_part(QuickBatch(), payload) == read_part(BatchHttpRequest(), payload)


def read_part(batch: BatchHttpRequest, payload: str) -> Any:
    """A part's (headers, status, reason, version, content), or the exception's type."""
    try:
        resp, content = batch._deserialize_response(payload)
    except Exception as exc:  # the library's own failures on odd text must stay the same
        return type(exc)
    return dict(resp), resp.status, resp.reason, resp.version, content


def test_googles_shape_is_split_without_the_parser() -> None:
    """The emulator's (and Google's) answer shape takes the fast path."""
    part = "Content-Type: application/http\r\nContent-ID: <response-a>\r\n\r\nHTTP/1.1 200 OK\r\nVary: Origin\r\n\r\n{}"
    assert (
        _split_answer("multipart/mixed; boundary=batch_x", answer_text([part, part], "batch_x", end="\r\n"))
        == [("<response-a>", "HTTP/1.1 200 OK\r\nVary: Origin\r\n\r\n{}")] * 2
    )
