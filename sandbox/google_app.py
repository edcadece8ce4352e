"""The /google mount: routes OAuth, the APIs (Gmail, Calendar, People, userinfo) and batch, and applies
latency, faults, auth, scopes, quota and counters."""

from __future__ import annotations

import math
from typing import Protocol

from sandbox import google_errors as errors
from sandbox import google_oauth
from sandbox.gcal_api import CalendarApi
from sandbox.gmail import GmailApi, match_gmail
from sandbox.google_batch import handle_batch
from sandbox.google_state import QUOTA_UNITS, READ_SCOPES, SCOPE_METADATA, AccessToken, GoogleState
from sandbox.http import Request, Response
from sandbox.people_api import PeopleApi

BATCH_PATHS = ("/batch/gmail/v1", "/batch")


class ApiHandler(Protocol):
    """One Google API: the endpoint kinds it serves, their paths, the scopes any one of which grants a kind."""

    kinds: frozenset[str]

    def match(self, path: str) -> tuple[str, list[str]] | None: ...

    def scopes(self, kind: str) -> frozenset[str]: ...

    def handle(self, kind: str, params: list[str], req: Request, token: AccessToken) -> Response: ...


class _Gmail:
    """GmailApi seen as an ApiHandler (its kinds keep their historical, unprefixed names)."""

    kinds = frozenset({"profile", "list", "get", "history"})

    def __init__(self, api: GmailApi) -> None:
        self.api = api

    def match(self, path: str) -> tuple[str, list[str]] | None:
        return match_gmail(path)

    def scopes(self, kind: str) -> frozenset[str]:
        return READ_SCOPES

    def handle(self, kind: str, params: list[str], req: Request, token: AccessToken) -> Response:
        return self.api.handle(kind, params, req, token)


def bearer(req: Request) -> str | None:
    """The access token from the Authorization header (or the access_token query parameter)."""
    auth = req.header("authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return req.arg("access_token")


class GoogleApp:
    """Handler for everything under the Google mount (see Sandbox.google_settings for the URLs)."""

    def __init__(self, state: GoogleState) -> None:
        self.state = state
        self.gmail = GmailApi(state)
        self.apis: tuple[ApiHandler, ...] = (
            _Gmail(self.gmail),
            CalendarApi(state),
            PeopleApi(state),
            google_oauth.UserinfoApi(state),
        )
        self._by_kind = {kind: api for api in self.apis for kind in api.kinds}

    def _route(self, path: str) -> tuple[str, list[str]] | None:
        for api in self.apis:
            route = api.match(path)
            if route is not None:
                return route
        return None

    def _kind(self, req: Request) -> tuple[str, list[str]] | None:
        path = req.path
        if path == "/o/oauth2/v2/auth":
            return "authorize", []
        if path == "/token":
            return "token", []
        if path == "/revoke":
            return "revoke", []
        if path in BATCH_PATHS:
            return "batch", []
        return self._route(path)

    def _client_key(self, req: Request) -> str:
        mailbox = self.state.peek_mailbox(bearer(req))
        return mailbox if mailbox is not None else f"ip:{req.client}"

    def _note_retry(self, client: str, resp: Response) -> None:
        retry = resp.header("Retry-After")
        if retry is not None and retry.isdigit():
            self.state.faults.note_retry_after(client, int(retry))

    def __call__(self, req: Request) -> Response:
        state = self.state
        route = self._kind(req)
        if route is None:
            state.stats.call("unknown")
            return errors.api_error(404, f"The requested URL {req.full_path} was not found on this server.", "notFound")
        kind, params = route
        client = self._client_key(req)
        state.faults.check_early(client, kind)
        state.faults.delay()
        account = state.peek_mailbox(bearer(req))
        label = kind
        if kind == "token":
            label = f"token:{google_oauth.grant_type_of(req) or 'none'}"
        state.stats.call(label, account)
        fault = state.faults.draw("request", kind)
        if fault is not None:
            resp = errors.fault_response(fault)
        elif kind == "authorize":
            resp = google_oauth.authorize(state, req)
        elif kind == "token":
            resp = google_oauth.token(state, req)
        elif kind == "revoke":
            resp = google_oauth.revoke(state, req)
        elif kind == "batch":
            resp, n = handle_batch(req, self._part, state.max_batch_parts)
            if n:
                state.stats.call("batch_parts", account, n, http=False)
        else:
            resp = self._api(req, kind, params)
        state.stats.status(resp.status)
        self._note_retry(client, resp)
        return resp

    def _part(self, req: Request) -> Response:
        """One batch part: same router and checks as a direct call, plus per-part faults."""
        route = self._route(req.path)
        if route is None:
            return errors.api_error(404, f"The requested URL {req.full_path} was not found.", "notFound")
        resp = self._api(req, route[0], route[1])
        self._note_retry(self._client_key(req), resp)
        return resp

    def _api(self, req: Request, kind: str, params: list[str]) -> Response:
        state = self.state
        token = state.authenticate(bearer(req))
        if token is None:
            return errors.unauthenticated()
        api = self._by_kind[kind]
        if not token.scopes & api.scopes(kind):
            return errors.insufficient_scope(SCOPE_METADATA if kind in _Gmail.kinds else min(api.scopes(kind)))
        if req.in_batch:
            fault = state.faults.draw("part", kind)
            if fault is not None:
                return errors.fault_response(fault)
        units = QUOTA_UNITS.get(kind, 1)
        wait = state.quota.take(token.mailbox, units, state.quota_units_per_second, state.quota_burst_seconds)
        if wait > 0:
            return errors.rate_limited(max(1, math.ceil(wait)), user_403=state.quota_error == "403")
        state.stats.op(kind, token.mailbox, units)
        return api.handle(kind, params, req, token)
