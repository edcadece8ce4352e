"""Microsoft Graph over `requests` for one page: bearer token, counted calls, errors the sync layer acts on.

Graph has no official synchronous Python client in the stack, so this is the small one: GET by path
or by an absolute @odata link (which must stay on the configured API's origin: the bearer token never
goes anywhere else), JSON batching, and Graph's error envelope mapped to connectors.base errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

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
from connectors.emails import InvalidAddress, normalize_email
from connectors.retry_after import retry_after_seconds

MAX_PAGE_SIZE = 1000
BATCH_LIMIT = 20
RESYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
RATE_LIMIT_CODES = frozenset({"applicationthrottled", "toomanyrequests", "activitylimitreached"})
THROTTLE_STATUSES = frozenset({429, 503})
TRANSIENT_STATUSES = frozenset({500, 502, 504})
_EXCERPT = 200


@dataclass(frozen=True)
class GraphError:
    """What a Graph error response says: status, error code, message and the Retry-After wait."""

    status: int
    code: str
    message: str
    retry_after: float

    def exception(self, what: str) -> ConnectorError:
        """The ConnectorError subclass the sync layer acts on, with context and no token."""
        text = f"{what}: HTTP {self.status}" + (f" {self.code}" if self.code else "") + f": {self.message}"
        code = self.code.lower()
        if self.status == 410 or code in RESYNC_CODES:
            return CursorExpired(text)
        if self.status == 401:
            return Unauthorized(text)
        if self.status in THROTTLE_STATUSES or code in RATE_LIMIT_CODES:
            return RateLimited(text, self.retry_after)
        if self.status in TRANSIENT_STATUSES:
            return TransientError(text)
        return ConnectorError(text)


def read_error(status: int, headers: Any, body: bytes | str | None) -> GraphError:
    """Parse Graph's `{"error": {"code", "message"}}`; any other body is quoted (200 chars)."""
    raw = body.encode() if isinstance(body, str) else (body or b"")
    retry = retry_after_seconds(headers.get("Retry-After") if headers else None)
    try:
        error = json.loads(raw)["error"]
        if not isinstance(error, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, IndexError):
        excerpt = raw[:_EXCERPT].decode("utf-8", "replace")
        return GraphError(status, "", f"non-JSON error body: {excerpt!r}", retry)
    return GraphError(status, str(error.get("code") or ""), str(error.get("message") or "")[:_EXCERPT], retry)


@dataclass
class GraphClient:
    """One page's Graph session; `calls` counts every HTTP request it sent."""

    api_url: str
    token: str = field(repr=False)
    ca_bundle: str | None = None
    timeout: float = 30.0
    calls: int = 0
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    quota: Quota = field(default=NO_QUOTA, repr=False)  # Graph counts each batch part as one request

    def __post_init__(self) -> None:
        self.api_url = self.api_url.rstrip("/") + "/"
        self.session.trust_env = False  # proxies, .netrc and REQUESTS_CA_BUNDLE stay out
        self.session.verify = self.ca_bundle or True
        self.session.headers.update({"Authorization": f"Bearer {self.token}", "Accept": "application/json"})

    def url(self, path_or_link: str) -> str:
        """An absolute URL for a path under the API, or a link checked to stay on the API's origin."""
        url = urljoin(self.api_url, path_or_link.lstrip("/")) if "://" not in path_or_link else path_or_link
        if not self.same_origin(url):
            raise CursorExpired(f"graph link leaves the configured API origin: {urlsplit(url).netloc!r}")
        return url

    def same_origin(self, url: str) -> bool:
        here, there = urlsplit(self.api_url), urlsplit(url)
        return (here.scheme, here.netloc.lower()) == (there.scheme, there.netloc.lower())

    def get(
        self,
        path_or_link: str,
        what: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSON:
        """GET and return the JSON object, or raise the mapped error."""
        return self._send("GET", self.url(path_or_link), what, params=params, headers=headers)

    def batch(self, requests_: list[JSON], what: str) -> dict[str, JSON]:
        """POST /$batch (at most 20 requests): {request id: {"status", "headers", "body"}}."""
        if len(requests_) > BATCH_LIMIT:
            raise ValueError(f"a Graph batch holds at most {BATCH_LIMIT} requests")
        answer = self._send("POST", self.url("$batch"), what, json_body={"requests": requests_}, cost=len(requests_))
        responses = answer.get("responses")
        if not isinstance(responses, list):
            raise ConnectorError(f"{what}: the batch answer has no responses list")
        for part in responses:  # a throttled part throttles the mailbox: the whole account waits
            if isinstance(part, dict) and part.get("status") in THROTTLE_STATUSES:
                headers = part.get("headers")
                pairs = headers.items() if isinstance(headers, dict) else ()
                wait = next((v for k, v in pairs if str(k).lower() == "retry-after"), None)
                self.quota.tell(retry_after=retry_after_seconds(str(wait) if wait is not None else None))
        return {str(r.get("id")): r for r in responses if isinstance(r, dict)}

    def _send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        json_body: JSON | None = None,
        cost: int = 1,
    ) -> JSON:
        self.quota.spend(cost)
        self.calls += 1
        try:
            response = self.session.request(
                method, url, params=params, headers=headers, json=json_body, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:  # refused, reset, timeout, TLS
            raise self._scrub(TransientError(f"{what}: {type(exc).__name__}: {exc}")) from None
        if response.status_code >= 300:
            error = read_error(response.status_code, response.headers, response.content)
            if response.status_code in THROTTLE_STATUSES:
                self.quota.tell(retry_after=error.retry_after)
            raise self._scrub(error.exception(what))
        try:
            payload = response.json()
        except ValueError:
            excerpt = response.content[:_EXCERPT].decode("utf-8", "replace")
            raise ConnectorError(f"{what}: HTTP {response.status_code} with a non-JSON body: {excerpt!r}") from None
        if not isinstance(payload, dict):
            raise ConnectorError(f"{what}: HTTP {response.status_code}: the answer is not a JSON object")
        return payload

    def _scrub(self, error: ConnectorError) -> ConnectorError:
        """The error with the access token masked, should a server have echoed it."""
        if self.token and self.token in str(error):
            error.args = tuple(str(arg).replace(self.token, "[token]") for arg in error.args)
        return error

    def close(self) -> None:
        self.session.close()


def open_graph(ctx: FetchContext) -> GraphClient:
    """A Graph client on ctx's endpoint with ctx's token (no refresh: the sync layer owns tokens)."""
    return GraphClient(
        ctx.endpoints.api_url, ctx.access_token, ctx.endpoints.ca_bundle, ctx.endpoints.timeout, quota=ctx.quota
    )


def me_address(ctx: FetchContext) -> str:
    """The connected account's address from GET /me: `mail`, else `userPrincipalName` (needs User.Read)."""
    client = open_graph(ctx)
    try:
        profile = client.get("me", "graph GET /me", params={"$select": "mail,userPrincipalName"})
    finally:
        client.close()
    for key in ("mail", "userPrincipalName"):
        value = profile.get(key)
        if isinstance(value, str) and value:
            try:
                return normalize_email(value)
            except InvalidAddress:
                continue
    raise ConnectorError("graph GET /me: neither mail nor userPrincipalName is an address")
