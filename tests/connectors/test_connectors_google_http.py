"""Reading Google error answers into the ConnectorError family, with context and without the token."""

from __future__ import annotations

import json

import httplib2
import pytest
from googleapiclient.errors import HttpError

from connectors.base import ConnectorError, CursorExpired, RateLimited, TransientError, Unauthorized
from connectors.google_http import CountingHttp, GoogleApi, error_for, read_error

TOKEN = "ya29.secret-token-value"


def http_error(status: int, body: object, **headers: str) -> HttpError:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpError(httplib2.Response({"status": status, **headers}), content, uri="https://x.test/gmail/v1/users/me")


def google_body(status: int, message: str, reason: str) -> dict[str, object]:
    return {"error": {"code": status, "message": message, "errors": [{"reason": reason, "domain": "global"}]}}


@pytest.mark.parametrize(
    ("status", "reason", "headers", "kind", "retry_after"),
    [
        (401, "authError", {}, Unauthorized, None),
        (429, "rateLimitExceeded", {"retry-after": "12"}, RateLimited, 12.0),
        (403, "userRateLimitExceeded", {}, RateLimited, 1.0),
        (403, "rateLimitExceeded", {"retry-after": "3"}, RateLimited, 3.0),
        (503, "backendError", {}, RateLimited, 1.0),
        (500, "backendError", {}, TransientError, None),
        (504, "backendError", {}, TransientError, None),
        (403, "insufficientPermissions", {}, ConnectorError, None),
        (400, "invalidArgument", {}, ConnectorError, None),
    ],
)
def test_statuses_map_to_what_the_sync_layer_acts_on(
    status: int, reason: str, headers: dict[str, str], kind: type, retry_after: float | None
) -> None:
    error = error_for(read_error(http_error(status, google_body(status, "Boom", reason), **headers)), "gmail x")
    assert type(error) is kind
    assert str(error) == f"gmail x: HTTP {status}: Boom ({reason})"
    if retry_after is not None:
        assert isinstance(error, RateLimited) and error.retry_after == retry_after


def test_bodies_that_are_not_google_json_are_quoted_and_cut() -> None:
    html = b"<html>" + b"x" * 500
    assert read_error(http_error(502, html)).message == f"non-JSON error body: {(html[:200].decode())!r}"
    assert read_error(http_error(502, b"\xff\xfe")).message == "non-JSON error body: '\ufffd\ufffd'"
    assert read_error(http_error(401, {"error": "invalid_token"})).message.startswith("unexpected error body:")
    assert read_error(http_error(400, [1, 2])).message.startswith("non-JSON error body:")
    odd = read_error(http_error(400, {"error": {"message": "m", "errors": "nope"}}))
    assert (odd.message, odd.reasons) == ("m", frozenset())


def test_the_token_never_reaches_an_exception() -> None:
    api = GoogleApi(service=None, wire=CountingHttp(), api_url="https://x.test/", token=TOKEN)
    with pytest.raises(ConnectorError) as caught, api.errors("gmail x"):
        raise http_error(400, google_body(400, f"bad header Bearer {TOKEN}", "badRequest"))
    assert TOKEN not in str(caught.value) and "[token]" in str(caught.value)


def test_a_404_can_mean_an_expired_cursor() -> None:
    api = GoogleApi(service=None, wire=CountingHttp(), api_url="https://x.test/", token=TOKEN)
    with pytest.raises(CursorExpired, match="HTTP 404"), api.errors("gmail history", not_found=CursorExpired):
        raise http_error(404, google_body(404, "Requested entity was not found.", "notFound"))
    with pytest.raises(ConnectorError, match="HTTP 404") as caught, api.errors("gmail get"):
        raise http_error(404, google_body(404, "Requested entity was not found.", "notFound"))
    assert not isinstance(caught.value, CursorExpired)
