"""Google batches written and read with plain string operations instead of the email package.

googleapiclient's `BatchHttpRequest` builds a MIME message per part and flattens the whole batch with
`email.generator`, then reads the answer back through `email.feedparser`: about 0.1 ms of CPU per part
for the envelope alone, on the path of a new connection's first page (time to first data). The text the
library writes for a GET is fixed (status line, Content-Type, MIME-Version, the request's headers, Host, a
blank line; then each part under the same four MIME headers between `--boundary` lines), so `QuickBatch`
writes that text directly, with the library's own boundary and header folding. An answer in the shape
Google sends (CRLF lines, no preamble, one-line headers) is split at its boundaries; anything else (a body,
a header that is not one printable ASCII line, an answer in another shape) is left to the library.
tests/connectors/test_connectors_batch_body.py checks both directions against the library's own code.
"""

from __future__ import annotations

import re
import urllib.parse
from email.feedparser import FeedParser
from email.generator import Generator
from email.message import Message
from email.policy import compat32
from typing import Any, cast

import httplib2
from googleapiclient import _auth
from googleapiclient.errors import BatchError, HttpError
from googleapiclient.http import BatchHttpRequest

_PART_HEADERS = "Content-Type: application/http\nMIME-Version: 1.0\nContent-Transfer-Encoding: binary\n"
_LINE_ENDS = re.compile(r"\r\n|\r|\n")
_BOUNDARY = re.compile(r"multipart/mixed; *boundary=(\"?)([0-9A-Za-z'()+_,./:=?-]+)\1", re.IGNORECASE)
_HEADER_LINE = re.compile(r"[\041-\071\073-\176]+:[^\r\n]*")  # a name the email parser takes, one line


class QuickBatch(BatchHttpRequest):  # type: ignore[misc]  # the library is untyped
    """A BatchHttpRequest that writes and reads its multipart text without the email package (same text)."""

    def _serialize_request(self, request: Any) -> str:
        headers = dict(request.headers)
        if request.http is not None:
            credentials = _auth.get_credentials_from_http(request.http)
            if credentials is not None:
                _auth.apply_credentials(credentials, headers)
        content_type = headers.pop("content-type", "application/json")
        parsed = urllib.parse.urlparse(request.uri)
        fields = [*headers.items(), ("Host", parsed.netloc)]
        plain = all(_plain(str(k)) and _plain(str(v)) for k, v in fields) and content_type.count("/") == 1
        if request.body is not None or not plain:  # a body goes through the generator's line-ending rules
            return str(super()._serialize_request(request))
        path = urllib.parse.urlunparse(("", "", parsed.path, parsed.params, parsed.query, ""))
        lines = [
            f"{request.method} {path} HTTP/1.1\n",
            f"Content-Type: {content_type}\n",
            "MIME-Version: 1.0\n",
            *(f"{k}: {v}\n" for k, v in fields),
            "\n",
        ]
        return "".join(lines)

    def _execute(self, http: Any, order: list[str], requests: dict[str, Any]) -> None:
        """The library's `_execute`: one POST of every part, each answer kept by its request id."""
        parts = []
        for request_id in order:
            payload = self._serialize_request(requests[request_id])
            if not payload.isascii():  # the generator may re-encode text with surrogates: its job
                super()._execute(http, order, requests)
                return
            content_id = _content_id(self._id_to_header(request_id))
            parts.append(_PART_HEADERS + content_id + "\n" + _LINE_ENDS.sub("\n", payload))
        boundary: str = Generator._make_boundary("\n".join(parts))  # type: ignore[attr-defined]  # the library's rule
        body = f"--{boundary}\n" + f"\n--{boundary}\n".join(parts) + f"\n--{boundary}--\n"
        headers = {"content-type": f'multipart/mixed; boundary="{boundary}"'}
        resp, content = http.request(self._batch_uri, method="POST", body=body, headers=headers)
        if resp.status >= 300:
            raise HttpError(resp, content, uri=self._batch_uri)
        text = content.decode("utf-8")
        split = _split_answer(resp["content-type"], text)
        answers = split if split is not None else _parsed_answer(resp, text)
        for answer_id, answer in answers:
            request_id = self._header_to_id(answer_id)
            response, part_content = self._deserialize_response(answer)
            self._responses[request_id] = (response, part_content.encode("utf-8"))

    def _deserialize_response(self, payload: str) -> tuple[httplib2.Response, str]:
        """The library's reading of one answer part (status line, headers, content), without its parser."""
        status_line, rest = payload.split("\n", 1)
        head = _headers(rest)
        if head is None:
            return super()._deserialize_response(payload)  # type: ignore[no-any-return]
        protocol, status, reason = status_line.split(" ", 2)
        fields = {name.lower(): value for name, value in head}  # the last of a name wins, as in the library
        fields["status"] = status
        resp = httplib2.Response(fields)
        resp.reason = reason
        resp.version = int(protocol.split("/", 1)[1].replace(".", ""))
        return resp, rest.split("\r\n\r\n", 1)[1]


def _content_id(value: str) -> str:
    """The generator's Content-ID line: unchanged when one plain line fits (fold costs ~90 µs), else folded."""
    line = f"Content-ID: {value}"
    if len(line) <= (compat32.max_line_length or 0) and _plain(value):
        return line + "\n"
    return compat32.fold("Content-ID", value)


def _plain(text: str) -> bool:
    """One line of printable ASCII: what the email generator writes back unchanged."""
    return text.isascii() and text.isprintable()


def _headers(text: str) -> list[tuple[str, str]] | None:
    """The header lines before the first CRLF CRLF as the email parser reads them, if every one is a plain
    `Name: value` line (no folding, no bare CR or LF); None leaves the text to the parser."""
    head, blank, _ = text.partition("\r\n\r\n")
    if not blank or not head:
        return None
    pairs = []
    for line in head.split("\r\n"):
        if not _HEADER_LINE.fullmatch(line):
            return None
        name, value = line.split(":", 1)
        pairs.append((name, value.lstrip(" \t")))
    return pairs


def _split_answer(content_type: str, text: str) -> list[tuple[str | None, str]] | None:
    """(first Content-ID, payload) of each application/http part of an answer in Google's shape, or None."""
    match = _BOUNDARY.fullmatch(content_type)
    if match is None:
        return None
    dash = "--" + match.group(2)
    closing, trimmed = f"\r\n{dash}--", text.removesuffix("\r\n")
    if not text.startswith(dash + "\r\n") or not trimmed.endswith(closing):
        return None  # a preamble, an epilogue or no closing line: the parser's rules for those
    answers: list[tuple[str | None, str]] = []
    for part in trimmed[len(dash) + 2 : -len(closing)].split(f"\r\n{dash}\r\n"):
        head = _headers(part)
        if head is None or dash in part:  # a boundary line elsewhere: the parser's reading differs
            return None
        types = [v for k, v in head if k.lower() == "content-type"]
        if not types or types[0].split(";", 1)[0].strip().lower() != "application/http":
            return None
        ids = [v for k, v in head if k.lower() == "content-id"]
        answers.append((ids[0] if ids else None, part.split("\r\n\r\n", 1)[1]))
    return answers


def _parsed_answer(resp: httplib2.Response, text: str) -> list[tuple[str | None, str]]:
    """The library's own reading of a batch answer (email.feedparser), for any shape."""
    parser = FeedParser()
    parser.feed(f"content-type: {resp['content-type']}\r\n\r\n{text}")
    message = parser.close()
    if not message.is_multipart():
        raise BatchError("Response not in multipart/mixed format.", resp=resp, content=text)
    parts = cast(list[Message], message.get_payload())
    return [(part["Content-ID"], cast(str, part.get_payload())) for part in parts]
