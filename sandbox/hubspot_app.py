"""The /hubspot mount: routes OAuth and CRM calls, and applies faults, auth, scopes, rate limits and counters."""

from __future__ import annotations

import re
import urllib.parse

from sandbox import hubspot_crm, hubspot_oauth
from sandbox import hubspot_errors as errors
from sandbox.http import Request, Response
from sandbox.hubspot_data import OBJECT_TYPES
from sandbox.hubspot_state import HubspotState

_TYPES = "|".join(OBJECT_TYPES)
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/oauth/authorize$"), "authorize"),
    ("POST", re.compile(r"^/oauth/v1/token$"), "token"),
    ("GET", re.compile(r"^/oauth/v1/access-tokens/([^/]+)$"), "token_info"),
    ("GET|DELETE", re.compile(r"^/oauth/v1/refresh-tokens/([^/]+)$"), "refresh_token"),
    ("GET", re.compile(r"^/crm/v3/owners/?$"), "owners"),
    ("GET", re.compile(rf"^/crm/v3/objects/({_TYPES})$"), "list"),
    ("POST", re.compile(rf"^/crm/v3/objects/({_TYPES})/search$"), "search"),
    ("POST", re.compile(rf"^/crm/v3/objects/({_TYPES})/batch/read$"), "batch_read"),
    ("GET", re.compile(rf"^/crm/v3/objects/({_TYPES})/([^/]+)$"), "get"),
    ("POST", re.compile(rf"^/crm/v4/associations/({_TYPES})/({_TYPES})/batch/read$"), "associations"),
]
OAUTH_KINDS = frozenset({"authorize", "token", "token_info", "refresh_token"})
# any one of these grants read access (engagements are also readable under the contacts scope)
READ_SCOPES: dict[str, frozenset[str]] = {
    "contacts": frozenset({"crm.objects.contacts.read"}),
    "companies": frozenset({"crm.objects.companies.read"}),
    "calls": frozenset({"crm.objects.calls.read", "crm.objects.contacts.read"}),
    "meetings": frozenset({"crm.objects.meetings.read", "crm.objects.contacts.read"}),
    "emails": frozenset({"crm.objects.emails.read", "crm.objects.contacts.read"}),
    "owners": frozenset({"crm.objects.owners.read"}),
}


def bearer(req: Request) -> str | None:
    auth = req.header("authorization") or ""
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


def match(req: Request) -> tuple[str, list[str]] | None:
    for methods, pattern, kind in ROUTES:
        found = pattern.match(req.path)
        if found and req.method in methods.split("|"):
            return kind, [urllib.parse.unquote(g) for g in found.groups()]
    return None


class HubspotApp:
    """Handler for everything under the HubSpot mount (see Sandbox.hubspot_settings for the URLs)."""

    def __init__(self, state: HubspotState) -> None:
        self.state = state

    def __call__(self, req: Request) -> Response:
        state = self.state
        route = match(req)
        if route is None:
            state.stats.call("unknown")
            return errors.not_found(f"No route for {req.method} {req.full_path}")
        kind, params = route
        with state.lock:
            user = state.auth.owner_of(bearer(req))
        client = user or f"ip:{req.client}"
        state.faults.check_early(client, kind)
        state.faults.delay()
        state.stats.call(kind, user)
        fault = state.faults.draw("request", kind)
        if fault is not None:
            resp = errors.fault_response(fault)
        elif kind in OAUTH_KINDS:
            resp = self._oauth(kind, params, req)
        else:
            resp = self._api(kind, params, req)
        state.stats.status(resp.status)
        retry = resp.header("Retry-After")
        if retry is not None and retry.isdigit():
            state.faults.note_retry_after(client, int(retry))
        return resp

    def _oauth(self, kind: str, params: list[str], req: Request) -> Response:
        if kind == "authorize":
            return hubspot_oauth.authorize(self.state, req)
        if kind == "token":
            return hubspot_oauth.token(self.state, req)
        if kind == "token_info":
            return hubspot_oauth.access_token_info(self.state, req, params[0])
        return hubspot_oauth.refresh_token(self.state, req, params[0])

    def _api(self, kind: str, params: list[str], req: Request) -> Response:
        state = self.state
        with state.lock:
            access, expired = state.auth.authenticate(bearer(req))
            if access is None:
                return errors.unauthorized(expired)
            scopes = frozenset(access.grant.scopes)
            user = state.portal.owners[access.grant.owner_id].email
        needed = (
            [READ_SCOPES["owners"]] if kind == "owners" else [READ_SCOPES[t] for t in params[:2] if t in READ_SCOPES]
        )
        for any_of in needed:
            if not any_of & scopes:
                return errors.missing_scopes(any_of)
        if kind == "search":
            verdict = state.limits.check(user, "SECONDLY", state.search_per_second, 1000)
            if not verdict.allowed:
                return errors.rate_limited("SECONDLY")  # search responses carry no rate-limit headers
            headers: list[tuple[str, str]] = []
        else:
            verdict = state.limits.check(user, "TEN_SECONDLY_ROLLING", state.burst_limit, state.burst_interval_ms)
            headers = self._limit_headers(verdict.limit, verdict.remaining, verdict.interval_ms)
            if not verdict.allowed:
                return errors.rate_limited("TEN_SECONDLY_ROLLING", headers)
        allowed, remaining = state.limits.daily(user, state.daily_limit)
        if state.daily_limit is not None:
            headers += [("X-HubSpot-RateLimit-Daily", str(state.daily_limit))]
            headers += [("X-HubSpot-RateLimit-Daily-Remaining", str(remaining))]
        if not allowed:
            return errors.rate_limited("DAILY", headers)
        state.stats.op(kind, user)
        resp = hubspot_crm.handle(state, kind, params, req, scopes)
        resp.headers.extend(headers)
        return resp

    def _limit_headers(self, limit: int, remaining: int, interval_ms: int) -> list[tuple[str, str]]:
        if not limit:
            return []
        return [
            ("X-HubSpot-RateLimit-Max", str(limit)),
            ("X-HubSpot-RateLimit-Remaining", str(remaining)),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", str(interval_ms)),
        ]
