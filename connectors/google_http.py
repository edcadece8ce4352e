"""Google API access for one page: the real client library on an authorized, counted connection.

No token refresh here (the sync layer owns tokens): a refused token is `Unauthorized`. Every other
failure becomes a ConnectorError carrying the status and Google's own message, never the token.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.oauth2.credentials
import google_auth_httplib2
import httplib2
from googleapiclient.discovery import build
from googleapiclient.errors import Error as GoogleClientError
from googleapiclient.errors import HttpError

from connectors.base import (
    JSON,
    NO_QUOTA,
    ConnectorError,
    CursorExpired,
    FetchContext,
    Quota,
    RateLimited,
    TransientError,
    Unauthorized,
)
from connectors.http_pool import POOL
from connectors.retry_after import retry_after_seconds

ExpiredWhen = Callable[["GoogleError"], bool]
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
TRANSIENT_STATUSES = frozenset({500, 502, 504})
_BODY_EXCERPT = 200
# Gmail's documented quota units per method (per user, 250 per second); other Google APIs: 1 per request
QUOTA_UNITS = {
    "gmail.users.messages.get": 5,
    "gmail.users.messages.list": 5,
    "gmail.users.history.list": 2,
    "gmail.users.getProfile": 1,
}


def quota_units(request: Any) -> int:
    """What one client-library request costs against the user's quota."""
    return QUOTA_UNITS.get(str(getattr(request, "methodId", "")), 1)


class CountingHttp(httplib2.Http):  # type: ignore[misc]  # httplib2 ships no type hints
    """httplib2 that counts the HTTP requests it sends, so a page reports its true API cost; each request runs
    on a keep-alive connection from the process's pool (connectors/http_pool.py) and hands it back after."""

    def __init__(self, *, ca_certs: str | None = None, timeout: float | None = None) -> None:
        super().__init__(ca_certs=ca_certs, timeout=timeout)
        self.calls = 0
        self._settings = (ca_certs, timeout)

    def request(self, uri: str, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        parts = urllib.parse.urlsplit(uri)
        conn_key = f"{parts.scheme.lower()}:{parts.netloc.lower()}"  # httplib2's key for its connections
        key = (conn_key, self._settings)
        if conn_key not in self.connections:
            pooled = POOL.take(key)
            if pooled is not None:
                self.connections[conn_key] = pooled
        try:
            answer = super().request(uri, *args, **kwargs)
        except BaseException:  # whatever state the connection is in, nobody else gets it
            failed = self.connections.pop(conn_key, None)
            if failed is not None:
                failed.close()
            raise
        done = self.connections.pop(conn_key, None)  # the answer was read whole: the connection is idle
        if done is not None:
            POOL.give(key, done)
        return answer


@dataclass(frozen=True)
class GoogleError:
    """What a Google error response says: status, message, reasons and the Retry-After wait."""

    status: int
    message: str
    reasons: frozenset[str]
    retry_after: float

    @property
    def rate_limited(self) -> bool:
        return self.status in (429, 503) or (self.status == 403 and bool(self.reasons & RATE_LIMIT_REASONS))

    @property
    def retryable(self) -> bool:
        return self.rate_limited or self.status in TRANSIENT_STATUSES


def _reasons(error: dict[str, Any]) -> frozenset[str]:
    """Reasons of the legacy `errors` list and of google.rpc.ErrorInfo `details` (newer APIs, e.g. People)."""
    found: set[str] = set()
    for key in ("errors", "details"):
        items = error.get(key)
        if isinstance(items, list):
            found.update(str(d["reason"]) for d in items if isinstance(d, dict) and d.get("reason"))
    return frozenset(found)


def _describe(content: bytes) -> tuple[str, frozenset[str]]:
    """Google's error message and reasons; any other body is quoted, cut to its first 200 characters."""
    excerpt = repr(content[:_BODY_EXCERPT].decode("utf-8", "replace"))
    try:
        error = json.loads(content)["error"]
    except (ValueError, KeyError, TypeError, IndexError):
        return f"non-JSON error body: {excerpt}", frozenset()
    if not isinstance(error, dict):  # OAuth style: {"error": "invalid_token", "error_description": ...}
        return f"unexpected error body: {excerpt}", frozenset()
    return str(error.get("message", ""))[:_BODY_EXCERPT], _reasons(error)


def read_error(exc: HttpError, attempt: int = 0) -> GoogleError:
    """The status, message, reasons and Retry-After wait of an HttpError."""
    content = exc.content if isinstance(exc.content, bytes) else str(exc.content or "").encode()
    message, reasons = _describe(content)
    return GoogleError(
        int(exc.resp.status), message, reasons, retry_after_seconds(exc.resp.get("retry-after"), attempt)
    )


def error_for(error: GoogleError, what: str) -> ConnectorError:
    """The ConnectorError subclass the sync layer acts on, with context."""
    text = f"{what}: HTTP {error.status}: {error.message}"
    if error.reasons:
        text += f" ({', '.join(sorted(error.reasons))})"
    if error.status == 401:
        return Unauthorized(text)
    if error.rate_limited:
        return RateLimited(text, error.retry_after)
    if error.status in TRANSIENT_STATUSES:
        return TransientError(text)
    return ConnectorError(text)


@dataclass
class GoogleApi:
    """One page's Google client: the discovery-built service and the counted connection under it."""

    service: Any
    wire: CountingHttp
    api_url: str
    token: str
    quota: Quota = NO_QUOTA

    @property
    def calls(self) -> int:
        return self.wire.calls

    @contextmanager
    def errors(
        self, what: str, not_found: type[ConnectorError] | None = None, expired: ExpiredWhen | None = None
    ) -> Iterator[None]:
        """Translate client-library and transport failures; scrub the token from any message.

        `expired` says which answers mean the cursor is gone (CursorExpired), e.g. Calendar's 410.
        """
        try:
            yield
        except HttpError as exc:
            error = read_error(exc)
            self.heard(error)
            if not_found is not None and error.status == 404:
                raise self._scrubbed(not_found(f"{what}: HTTP 404: {error.message}")) from None
            if expired is not None and expired(error):
                raise self._scrubbed(CursorExpired(str(error_for(error, what)))) from None
            raise self._scrubbed(error_for(error, what)) from None
        except google.auth.exceptions.RefreshError:  # a 401 the library wanted to refresh: not our job
            raise Unauthorized(f"{what}: HTTP 401: access token refused") from None
        except GoogleClientError as exc:  # e.g. a batch answer that is not multipart
            raise self._scrubbed(ConnectorError(f"{what}: {type(exc).__name__}: {exc}")) from None
        except (httplib2.HttpLib2Error, OSError) as exc:  # refused, reset, timeout, TLS
            raise self._scrubbed(TransientError(f"{what}: {type(exc).__name__}: {exc}")) from None

    def execute(
        self,
        request: Any,
        what: str,
        not_found: type[ConnectorError] | None = None,
        expired: ExpiredWhen | None = None,
    ) -> JSON:
        """Run one client-library request (one HTTP call) and return its JSON."""
        self.quota.spend(quota_units(request))
        with self.errors(what, not_found, expired):
            result: JSON = request.execute()
        return result

    def spend_batch(self, requests: Iterable[Any]) -> None:
        """Wait for the quota a batch's parts cost (Google counts each part, not the batch call)."""
        self.quota.spend(sum(quota_units(r) for r in requests))

    def heard(self, error: GoogleError) -> None:
        """A throttled answer (call or batch part): the whole account waits out its Retry-After."""
        if error.rate_limited:
            self.quota.tell(retry_after=error.retry_after)

    def _scrubbed(self, error: ConnectorError) -> ConnectorError:
        """The error with the access token masked, should a server have echoed it."""
        if self.token and self.token in str(error):
            error.args = tuple(str(arg).replace(self.token, "[token]") for arg in error.args)
        return error


def open_api(ctx: FetchContext, api: str, version: str, service_path: str = "") -> GoogleApi:
    """Build `api` on ctx's endpoint with ctx's token; no refresh on 401 (the sync layer refreshes).

    `service_path` is the discovery document's servicePath (e.g. "calendar/v3/"): an api_endpoint
    override replaces rootUrl and servicePath together, so it goes back on after the configured root.
    """
    wire = CountingHttp(ca_certs=ctx.endpoints.ca_bundle, timeout=ctx.endpoints.timeout)
    credentials = google.oauth2.credentials.Credentials(token=ctx.access_token)  # type: ignore[no-untyped-call]
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=wire, refresh_status_codes=())
    # The shipped discovery document (static_discovery): build_from_document on a cached parse measured
    # 3.9 ms against 4.3 ms per build, noise beside a page's HTTP calls, so the plain path stays.
    root = ctx.endpoints.api_url
    if service_path and not root.endswith("/"):
        root += "/"
    service = build(
        api, version, static_discovery=True, http=http, client_options={"api_endpoint": root + service_path}
    )
    return GoogleApi(service, wire, ctx.endpoints.api_url, ctx.access_token, ctx.quota)
