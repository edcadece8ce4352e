"""HubSpot API access for one page: hubspot-api-client on ctx's host and CA, every HTTP call counted.

Calls ask the library for the raw response (`_preload_content=False`) and read its JSON here: the
generated models raise on a null required field (one odd record would sink the whole page), and the
raw response keeps the headers (rate-limit policy, server Date) the models drop. urllib3 retries are
off, so one library call is one HTTP request. No token refresh here: a refused token is `Unauthorized`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any

import hubspot.crm.associations.v4 as associations_v4
import hubspot.crm.objects as crm_objects
import hubspot.crm.owners as crm_owners
import hubspot.oauth as hubspot_oauth
import urllib3
from hubspot import HubSpot
from hubspot.discovery.discovery_base import DiscoveryBase

from connectors.base import (
    JSON,
    ConnectorError,
    FetchContext,
    RateLimited,
    TransientError,
    Unauthorized,
)
from connectors.retry_after import backoff_hint, retry_after_seconds

API_ERRORS: tuple[type[Exception], ...] = (
    crm_objects.ApiException,
    crm_owners.ApiException,
    associations_v4.ApiException,
    hubspot_oauth.ApiException,
)
TRANSIENT_STATUSES = frozenset({0, 500, 502, 504})  # 0: the library's wrapper around a TLS failure
IN_PLACE_MAX_WAIT = 1.0  # a SECONDLY (search) 429 is worth a short sleep rather than a requeue
IN_PLACE_RETRIES = 2
DAILY_WAIT = 3600.0  # the daily limit resets at midnight in the portal's (unknown) time zone: look hourly
_EXCERPT = 200
BATCH_READ = 100  # inputs per v3 batch read
Record = Mapping[str, Any]


@dataclass(frozen=True)
class Reply:
    """A successful answer: status (200, or 207 for a partial batch), JSON body, headers (lower-case names)."""

    status: int
    body: JSON
    headers: Mapping[str, str]

    def server_ms(self) -> int | None:
        """The server's clock from its Date header, in epoch ms (None when absent or unreadable)."""
        try:
            when = parsedate_to_datetime(self.headers.get("date", ""))
        except (TypeError, ValueError, IndexError):
            return None
        return int(when.timestamp() * 1000) if when.tzinfo is not None else None


def rate_limit_wait(headers: Mapping[str, str], body: Mapping[str, Any], attempt: int = 0) -> float:
    """Seconds to wait after a 429: Retry-After when sent, else what the policy that tripped implies.

    `headers` has lower-case names."""
    if headers.get("retry-after"):
        return retry_after_seconds(headers["retry-after"], attempt)
    policy = str(body.get("policyName") or "").upper()
    if policy == "DAILY":
        midnight = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return min(DAILY_WAIT, max((midnight - datetime.now(UTC)).total_seconds(), 1.0))
    if policy == "SECONDLY":
        return 1.0
    interval = headers.get("x-hubspot-ratelimit-interval-milliseconds", "")
    if interval.isdigit() and int(interval) > 0:
        return int(interval) / 1000  # a rolling window: a full interval is sure to free a slot
    return backoff_hint(attempt) if policy == "" else 10.0


def _describe(status: int, raw: bytes) -> tuple[str, dict[str, Any]]:
    """HubSpot's message (and category) from an error body; any other body quoted to 200 characters."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return f"non-JSON error body: {raw[:_EXCERPT].decode('utf-8', 'replace')!r}", {}
    message = str(body.get("message") or body.get("status") or "")[:_EXCERPT]
    category = body.get("category") or body.get("policyName") or body.get("errorType")
    return (f"{message} ({category})" if category else message), body


def _lower(headers: Any) -> dict[str, str]:
    """Header names in lower case (the library hands an HTTPHeaderDict, or None)."""
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


class _TokenMask(logging.Filter):
    """Masks the token this thread has in flight in HTTP-library log lines (urllib3 logs URL paths at DEBUG,
    the library logs response bodies, and token metadata carries the token in both)."""

    local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        token = getattr(self.local, "token", None)
        if token and token in (message := record.getMessage()):
            record.msg, record.args = message.replace(token, "[token]"), None
        return True


_MASK = _TokenMask()
for _logger in ("urllib3.connectionpool", "hubspot.oauth.rest", "hubspot.crm.objects.rest"):
    logging.getLogger(_logger).addFilter(_MASK)


class HubspotApi:
    """One page's HubSpot client: the library's API objects on one token and host, and a call counter."""

    def __init__(self, ctx: FetchContext) -> None:
        self.token = ctx.access_token
        self.timeout = ctx.endpoints.timeout
        self.quota = ctx.quota
        self.calls = 0
        self.client = HubSpot(
            access_token=ctx.access_token,
            host=ctx.endpoints.api_url.rstrip("/"),
            ssl_ca_cert=ctx.endpoints.ca_bundle,
            retry=False,
            api_factory=self._counted,
        )

    def _counted(self, package: Any, api_name: str, config: dict[str, Any]) -> Any:
        """The library's own factory, with its REST client's request wrapped to count HTTP calls."""
        api = DiscoveryBase._default_api_factory(package, api_name, config)
        rest = api.api_client.rest_client
        send = rest.request

        def request(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return send(*args, **kwargs)

        rest.request = request
        return api

    # one API object (one connection pool) each, built on first use
    @cached_property
    def objects(self) -> Any:
        return self.client.crm.objects.basic_api

    @cached_property
    def search(self) -> Any:
        return self.client.crm.objects.search_api

    @cached_property
    def batch(self) -> Any:
        return self.client.crm.objects.batch_api

    @cached_property
    def owners(self) -> Any:
        return self.client.crm.owners.owners_api

    @cached_property
    def associations(self) -> Any:
        return self.client.crm.associations.v4.batch_api

    @cached_property
    def access_tokens(self) -> Any:
        return self.client.oauth.access_tokens_api

    def call(
        self,
        what: str,
        method: Callable[..., Any],
        *args: Any,
        not_found: type[ConnectorError] = ConnectorError,
        **kwargs: Any,
    ) -> Reply:
        """One library call (one HTTP request); a short SECONDLY wait is slept in place, at most twice."""
        pool = "search" if getattr(method, "__self__", None) is self.__dict__.get("search") else ""
        for attempt in range(IN_PLACE_RETRIES + 1):
            self.quota.spend(1, pool)  # searches have a limit of their own (and no rate-limit headers)
            try:
                _TokenMask.local.token = self.token
                try:
                    raw = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
                finally:  # HubSpot counted the request by now, however late it reached it
                    self.quota.answered(1, pool)
                reply = self._reply(what, raw)
                self._heard(reply.headers)
                return reply
            except API_ERRORS as exc:
                error = self._error(what, exc, attempt)
                self._heard(_lower(getattr(exc, "headers", None)), getattr(error, "retry_after", 0.0))
                if int(getattr(exc, "status", 0) or 0) == 404:
                    error = not_found(str(error))
                wait = error.retry_after if isinstance(error, RateLimited) else None
                if wait is not None and wait <= IN_PLACE_MAX_WAIT and attempt < IN_PLACE_RETRIES:
                    time.sleep(wait)
                    continue
                raise self._scrubbed(error) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:  # refused, reset, timeout, TLS
                raise self._scrubbed(TransientError(f"{what}: {type(exc).__name__}: {exc}")) from None
            finally:
                _TokenMask.local.token = None
        raise AssertionError("unreachable")  # pragma: no cover

    def _heard(self, headers: Mapping[str, str], retry_after: float = 0.0) -> None:
        """Tell the account's shared budget the TEN_SECONDLY_ROLLING window the answer announced (and any wait)."""
        limit, left = headers.get("x-hubspot-ratelimit-max", ""), headers.get("x-hubspot-ratelimit-remaining", "")
        interval = headers.get("x-hubspot-ratelimit-interval-milliseconds", "")
        if limit.isdigit() and interval.isdigit():
            self.quota.tell(
                retry_after=retry_after,
                limit=float(limit),
                remaining=float(left) if left.isdigit() else None,
                window=int(interval) / 1000,
            )
        elif retry_after > 0:
            self.quota.tell(retry_after=retry_after)

    def _reply(self, what: str, raw: Any) -> Reply:
        try:
            data = raw.data
        finally:
            raw.release_conn()
        headers = _lower(raw.headers)
        if not data or not data.strip():
            return Reply(int(raw.status), {}, headers)
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            excerpt = data[:_EXCERPT].decode("utf-8", "replace")
            raise self._scrubbed(
                ConnectorError(f"{what}: HTTP {raw.status} with a non-JSON body: {excerpt!r}")
            ) from None
        if not isinstance(body, dict):
            raise ConnectorError(f"{what}: HTTP {raw.status}: expected a JSON object")
        return Reply(int(raw.status), body, headers)

    def _error(self, what: str, exc: Any, attempt: int) -> ConnectorError:
        """The ConnectorError subclass the sync layer acts on, with HubSpot's own message."""
        status = int(getattr(exc, "status", 0) or 0)
        raw = exc.body if isinstance(exc.body, bytes) else str(exc.body or exc.reason or "").encode()
        headers = _lower(exc.headers)
        message, body = _describe(status, raw)
        text = f"{what}: HTTP {status}: {message}"
        if status == 401:
            return Unauthorized(text)
        if status == 429:
            return RateLimited(text, rate_limit_wait(headers, body, attempt))
        if status == 503:
            return RateLimited(text, retry_after_seconds(headers.get("retry-after"), attempt))
        if status in TRANSIENT_STATUSES:
            return TransientError(text)
        return ConnectorError(text)

    def _scrubbed(self, error: ConnectorError) -> ConnectorError:
        """The error with the access token masked (it travels in a URL path for token metadata)."""
        if self.token and self.token in str(error):
            error.args = tuple(str(arg).replace(self.token, "[token]") for arg in error.args)
        return error


def results(reply: Reply, what: str) -> list[Record]:
    """The answer's `results` records; an answer without that list is a provider error."""
    found = reply.body.get("results")
    if not isinstance(found, list):
        raise ConnectorError(f"{what}: the answer has no results list")
    return [r for r in found if isinstance(r, Mapping)]


def read_by_ids(api: HubspotApi, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[Record]:
    """Live records by id, 100 a batch read; ids HubSpot does not find (archived, gone) are left out."""
    found: list[Record] = []
    what = f"hubspot {object_type} batch read"
    for start in range(0, len(ids), BATCH_READ):
        chunk = [{"id": i} for i in ids[start : start + BATCH_READ]]
        body: JSON = {"inputs": chunk, "properties": list(properties), "propertiesWithHistory": []}
        found += results(api.call(what, api.batch.read, object_type, body, archived=False), what)
    return found
