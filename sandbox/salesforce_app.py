"""The /salesforce mount: OAuth and REST (query, queryAll, query locators, getDeleted) with limits and faults.

REST errors are Salesforce's JSON list `[{"message", "errorCode"}]`; every REST answer carries
`Sforce-Limit-Info: api-usage=used/limit`, and a spent daily allowance is 403 REQUEST_LIMIT_EXCEEDED.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox import salesforce_oauth as oauth
from sandbox.faults import Fault, html_error_page
from sandbox.http import Request, Response, json_response, text_response
from sandbox.salesforce_query import format_value
from sandbox.salesforce_schema import canonical_object
from sandbox.salesforce_soql import SoqlError, parse_datetime
from sandbox.salesforce_state import MAX_BATCH, QueryPage, SalesforceState

VERSIONS = frozenset(f"{v}.0" for v in range(31, 63))
_DATA = r"^/services/data/v(\d+\.\d)"
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("query", re.compile(_DATA + r"/query/?$")),
    ("queryAll", re.compile(_DATA + r"/queryAll/?$")),
    ("query_more", re.compile(_DATA + r"/(query|queryAll)/([^/]+)$")),
    ("deleted", re.compile(_DATA + r"/sobjects/([^/]+)/deleted/?$")),
]
_OAUTH = {
    "/services/oauth2/authorize": "authorize",
    "/services/oauth2/token": "token",
    "/services/oauth2/revoke": "revoke",
    "/services/oauth2/userinfo": "userinfo",
}
_IDENTITY = re.compile(r"^/id/([^/]+)/([^/]+)$")
_BATCH = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


def api_error(status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response([{"message": message, "errorCode": code}], status, headers)


def fault_response(fault: Fault) -> Response:
    """An injected fault as Salesforce's front ends render it."""
    retry = (("Retry-After", str(fault.retry_after)),) if fault.retry_after is not None else ()
    if fault.kind == "403":
        return api_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    if fault.kind == "429":
        return api_error(429, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.", retry)
    if fault.kind == "500":
        return api_error(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId "
                         "if you contact support: 1234567890-12345 (-1234567890)")  # fmt: skip
    if fault.kind == "503":
        return api_error(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable", retry)
    return text_response(html_error_page(fault.status), fault.status, "text/html; charset=UTF-8")


def bearer(req: Request) -> str | None:
    auth = req.header("authorization") or ""
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


class SalesforceApp:
    """Handler for everything under the Salesforce mount (see Sandbox.salesforce_settings for the URLs)."""

    def __init__(self, state: SalesforceState) -> None:
        self.state = state

    def _route(self, path: str) -> tuple[str, list[str]] | None:
        if path in _OAUTH:
            return _OAUTH[path], []
        m = _IDENTITY.match(path)
        if m:
            return "identity", list(m.groups())
        for kind, pattern in _ROUTES:
            m = pattern.match(path)
            if m:
                return kind, list(m.groups())
        return None

    def __call__(self, req: Request) -> Response:
        state = self.state
        mount = req.full_path[: len(req.full_path) - len(req.path)] if req.full_path.endswith(req.path) else ""
        instance_url = req.base_url + mount
        route = self._route(req.path)
        token = bearer(req)
        client = state.auth.peek_user(token) or f"ip:{req.client}"
        state.faults.check_early(client, route[0] if route else "unknown")
        state.faults.delay()
        label = route[0] if route else "unknown"
        if label == "token":
            label = f"token:{oauth.grant_type_of(req) or 'none'}"
        state.stats.call(label, state.auth.peek_user(token))
        fault = state.faults.draw("request", route[0]) if route else None
        if route is None:
            resp = api_error(404, "NOT_FOUND", "The requested resource does not exist")
        elif fault is not None:
            resp = fault_response(fault)
        else:
            resp = self._dispatch(req, route, token, instance_url, mount)
        state.stats.status(resp.status)
        retry = resp.header("Retry-After")
        if retry is not None and retry.isdigit():
            state.faults.note_retry_after(client, int(retry))
        return resp

    def _dispatch(
        self, req: Request, route: tuple[str, list[str]], token: str | None, instance: str, mount: str
    ) -> Response:
        kind, params = route
        state = self.state
        if kind == "authorize":
            return oauth.authorize(state, req)
        if kind == "token":
            return oauth.token(state, req, instance)
        if kind == "revoke":
            return oauth.revoke(state, req)
        if kind == "userinfo":
            return oauth.identity(state, req, token, instance, None)
        if kind == "identity":
            return oauth.identity(state, req, token, instance, params[1])
        return self._rest(req, kind, params, token, mount)

    def _rest(self, req: Request, kind: str, params: list[str], token: str | None, mount: str) -> Response:
        state = self.state
        version = params[0]
        if version not in VERSIONS:
            return api_error(404, "NOT_FOUND", "The requested resource does not exist")
        session = state.auth.authenticate(token)
        if session is None:
            return api_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if not {"api", "full"} & session.scopes:
            return api_error(401, "INVALID_SESSION_ID", "This session is not valid for use with the REST API")
        with state.lock:
            spent = state.api_used >= state.daily_api_limit
            limit_info = (
                "Sforce-Limit-Info",
                f"api-usage={state.api_used + (0 if spent else 1)}/{state.daily_api_limit}",
            )
        if spent:
            return api_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", (limit_info,))
        if req.method != "GET":
            return api_error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET")
        base = f"{mount}/services/data/v{version}"
        try:
            sobject, body = self._serve(req, kind, params, base)
        except SoqlError as exc:
            state.count_api(kind, None)
            return api_error(404 if exc.code == "NOT_FOUND" else 400, exc.code, exc.message, (limit_info,))
        state.count_api(kind, sobject)
        return json_response(body, 200, (limit_info,))

    def _batch_size(self, req: Request) -> int:
        m = _BATCH.search(req.header("sforce-query-options") or "")
        return int(m.group(1)) if m else MAX_BATCH

    def _serve(self, req: Request, kind: str, params: list[str], base: str) -> tuple[str, Any]:
        state = self.state
        if kind == "deleted":
            sobject = canonical_object(params[1])
            if sobject is None:
                raise SoqlError("NOT_FOUND", "The requested resource does not exist")
            try:
                start, end = parse_datetime(req.arg("start") or ""), parse_datetime(req.arg("end") or "")
            except ValueError:
                raise SoqlError("MALFORMED_QUERY", "start and end must be ISO 8601 dateTimes") from None
            result = state.deleted(sobject, start, end)
            return sobject, {k: _formatted(v) for k, v in result.items()}
        if kind == "query_more":
            sobject, page = state.query_more(params[1], params[2], self._batch_size(req))
            endpoint = params[1]
        else:
            soql = req.arg("q")
            if not soql:
                raise SoqlError("MALFORMED_QUERY", "missing query parameter q")
            sobject, page = state.query(
                soql, include_deleted=kind == "queryAll", batch_size=self._batch_size(req), base=base
            )
            endpoint = kind
        return sobject, _page_body(page, f"{base}/{endpoint}")


def _formatted(value: Any) -> Any:
    if isinstance(value, list):
        return [{k: format_value(v) for k, v in item.items()} for item in value]
    return format_value(value)


def _page_body(page: QueryPage, locator_base: str) -> dict[str, Any]:
    body: dict[str, Any] = {"totalSize": page.total, "done": page.next_locator is None}
    if page.next_locator is not None:
        body["nextRecordsUrl"] = f"{locator_base}/{page.next_locator}"
    body["records"] = page.rows
    return body
