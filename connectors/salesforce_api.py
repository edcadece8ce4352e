"""Salesforce REST access for one page: simple-salesforce on the connection's instance, counted, errors mapped.

The session comes from the OAuth web-server flow (the sync layer's token): simple-salesforce is built with
`instance_url` + `session_id` only (no other login of the library's), and never refreshes. A refused session
(401 INVALID_SESSION_ID) is `Unauthorized`; REQUEST_LIMIT_EXCEEDED (403) and 429/503 are `RateLimited`;
an expired query locator is `LocatorExpired` so the caller can resume from its high-water mark.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError

from connectors.base import (
    JSON,
    NO_QUOTA,
    ConnectorError,
    FetchContext,
    Quota,
    RateLimited,
    TransientError,
    Unauthorized,
)
from connectors.retry_after import retry_after_seconds

API_VERSION = "59.0"
BATCH_SIZE = 2000  # Sforce-Query-Options batchSize: the API's maximum (200..2000)
DAILY_LIMIT_WAIT = 3600.0  # TotalRequests is a rolling 24-hour allowance: look again in an hour
CONCURRENCY_WAIT = 30.0  # ConcurrentPerOrgLongTxn and other short throttles
TRANSIENT_STATUSES = frozenset({500, 502, 504})
ALLOWANCE_SECONDS = 86_400.0  # Sforce-Limit-Info's api-usage counts the org's rolling 24 hours
_EXCERPT = 200
_API_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class LocatorExpired(ConnectorError):
    """The server forgot a nextRecordsUrl (INVALID_QUERY_LOCATOR): resume the query from the high-water mark."""


class CountingSession(requests.Session):
    """A requests session that counts every HTTP request, keeps the last answer (for Retry-After) and
    spends each request from the org's shared budget, teaching it the allowance in Sforce-Limit-Info."""

    def __init__(self, timeout: float, quota: Quota = NO_QUOTA) -> None:
        super().__init__()
        self.calls = 0
        self.timeout = timeout
        self.quota = quota
        self.last: requests.Response | None = None

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.quota.spend(1)
        self.calls += 1
        kwargs.setdefault("timeout", self.timeout)
        self.last = super().request(method, url, *args, **kwargs)
        usage = _API_USAGE.search(self.last.headers.get("Sforce-Limit-Info", ""))
        if usage is not None:
            used, limit = int(usage.group(1)), int(usage.group(2))
            self.quota.tell(limit=limit, remaining=max(limit - used, 0), window=ALLOWANCE_SECONDS)
        return self.last


def _error_items(content: Any) -> tuple[str, str]:
    """(errorCode, message) of a Salesforce error body; a non-JSON body is quoted, cut to 200 characters."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return str(first.get("errorCode", "")), str(first.get("message", ""))[:_EXCERPT]
    if isinstance(content, dict):
        return str(content.get("error", "")), str(content.get("error_description", ""))[:_EXCERPT]
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    return "", f"non-JSON error body: {text[:_EXCERPT]!r}"


@dataclass
class SalesforceApi:
    """One page's client: simple-salesforce over a counting session, and the token to scrub from errors."""

    sf: Salesforce
    wire: CountingSession
    token: str

    @property
    def calls(self) -> int:
        return self.wire.calls

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Translate library and transport failures into the sync layer's errors, without the token."""
        try:
            yield
        except SalesforceError as exc:
            raise self._scrub(self._translate(exc, what)) from None
        except requests.RequestException as exc:
            raise self._scrub(TransientError(f"{what}: {type(exc).__name__}: {exc}")) from None
        except ValueError as exc:  # a 2xx whose body is not JSON
            raise self._scrub(ConnectorError(f"{what}: unreadable answer: {exc}")) from None

    def _translate(self, exc: SalesforceError, what: str) -> ConnectorError:
        code, message = _error_items(exc.content)
        status = int(exc.status)
        text = f"{what}: HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        header = self.wire.last.headers.get("Retry-After") if self.wire.last is not None else None
        if status == 401:
            return Unauthorized(text)
        if code == "REQUEST_LIMIT_EXCEEDED" or status in (429, 503):
            fallback = DAILY_LIMIT_WAIT if "TotalRequests" in message else CONCURRENCY_WAIT
            wait = retry_after_seconds(header) if header else fallback
            self.wire.quota.tell(retry_after=wait)
            return RateLimited(text, wait)
        if code == "INVALID_QUERY_LOCATOR":
            return LocatorExpired(text)
        if status in TRANSIENT_STATUSES:
            return TransientError(text)
        return ConnectorError(text)

    def _scrub(self, error: ConnectorError) -> ConnectorError:
        if self.token and self.token in str(error):
            error.args = tuple(str(a).replace(self.token, "[token]") for a in error.args)
        return error

    def _options(self, batch_size: int) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={batch_size}"}

    def query_all(self, soql: str, what: str, batch_size: int = BATCH_SIZE) -> JSON:
        """The first page of a queryAll (deleted and merged rows included)."""
        with self.errors(what):
            result: JSON = self.sf.query(soql, include_deleted=True, headers=self._options(batch_size))
        return result

    def query(self, soql: str, what: str, batch_size: int = BATCH_SIZE) -> JSON:
        """The first page of a query (live rows only)."""
        with self.errors(what):
            result: JSON = self.sf.query(soql, headers=self._options(batch_size))
        return result

    def more(self, next_records_url: str, what: str, batch_size: int = BATCH_SIZE) -> JSON:
        """The page a nextRecordsUrl points at."""
        with self.errors(what):
            result: JSON = self.sf.query_more(
                next_records_url, identifier_is_url=True, headers=self._options(batch_size)
            )
        return result

    def records_of(self, soql: str, what: str) -> Iterator[JSON]:
        """Every live row of a small query, following nextRecordsUrl; a repeated URL is an error, not a loop."""
        page = self.query(soql, what)
        seen: set[str] = set()
        while True:
            yield from records(page)
            url = next_url(page, what)
            if url is None:
                return
            if url in seen:
                raise ConnectorError(f"{what}: the server repeated nextRecordsUrl {url}")
            seen.add(url)
            page = self.more(url, what)

    def userinfo(self) -> JSON:
        """The OpenID userinfo of the session's user."""
        with self.errors("salesforce userinfo"):
            result = self.sf.oauth2("userinfo")
        if not isinstance(result, dict):
            raise ConnectorError("salesforce userinfo: the answer is not a JSON object")
        return result


def records(page: JSON) -> list[JSON]:
    """The rows of a query page (tolerating a missing or null list)."""
    rows = page.get("records")
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def next_url(page: JSON, what: str) -> str | None:
    """The page's nextRecordsUrl, None when done; a page neither done nor linked is an error."""
    url = page.get("nextRecordsUrl")
    if page.get("done", True) and not url:
        return None
    if not isinstance(url, str) or not url.startswith("/"):
        raise ConnectorError(f"{what}: a page that is not done came without a usable nextRecordsUrl")
    return url


_ORIGIN = re.compile(r"^https://[^/]+")


def open_api(ctx: FetchContext) -> SalesforceApi:
    """simple-salesforce on ctx's instance with ctx's token; TLS verified against ctx's CA bundle."""
    instance = (ctx.endpoints.api_url or ctx.extra.get("instance_url") or "").rstrip("/")
    if not _ORIGIN.match(instance):
        raise ConnectorError("salesforce: no https instance_url for this connection")
    wire = CountingSession(ctx.endpoints.timeout, ctx.quota)
    wire.trust_env = False  # no proxies, netrc or REQUESTS_CA_BUNDLE from the environment
    wire.verify = ctx.endpoints.ca_bundle or True
    sf = Salesforce(instance_url=instance, session_id=ctx.access_token, version=API_VERSION, session=wire)
    # simple-salesforce keeps only the host of instance_url; keep its path too (a proxy or the sandbox mount)
    sf.base_url = f"{instance}/services/data/v{API_VERSION}/"
    sf.oauth2_url = f"{instance}/services/oauth2/"
    return SalesforceApi(sf, wire, ctx.access_token)
