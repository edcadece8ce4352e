"""The /microsoft mount: identity endpoints under /{tenant}, Graph under /graph/v1.0, with faults and counters."""

from __future__ import annotations

import re
from collections.abc import Callable

from sandbox import graph_api, microsoft_oauth
from sandbox.faults import Fault, html_error_page
from sandbox.graph_batch import handle_batch
from sandbox.http import Request, Response, text_response
from sandbox.microsoft_identity import Access
from sandbox.microsoft_state import MicrosoftState

MOUNT = "/microsoft"
GRAPH_PREFIX = "/graph/v1.0"
_IDENTITY = re.compile(
    r"^/(?P<tenant>[^/]+)/(?P<rest>v2\.0/\.well-known/openid-configuration|oauth2/v2\.0/authorize"
    r"|oauth2/v2\.0/token|discovery/v2\.0/keys)$"
)
_MAIL = re.compile(r"^/me/mailFolders/(?P<folder>inbox|sentitems)/messages/delta$", re.IGNORECASE)
_EVENT = re.compile(r"^/me/events/(?P<id>[^/]+)$")
_IDENTITY_KINDS = {
    "v2.0/.well-known/openid-configuration": "discovery",
    "oauth2/v2.0/authorize": "authorize",
    "oauth2/v2.0/token": "token",
    "discovery/v2.0/keys": "keys",
}


def bearer(req: Request) -> str | None:
    auth = req.header("authorization") or ""
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


def graph_kind(path: str) -> tuple[str, str] | None:
    """(endpoint kind, argument) of a Graph path relative to /v1.0, or None."""
    if path == "/me":
        return "me", ""
    if path in ("/me/calendarView/delta", "/me/calendarview/delta"):
        return "calendar_delta", ""
    if path == "/me/contacts/delta":
        return "contacts_delta", ""
    if path == "/$batch":
        return "batch", ""
    mail = _MAIL.match(path)
    if mail:
        return "mail_delta", mail.group("folder").lower()
    event = _EVENT.match(path)
    return ("event_get", event.group("id")) if event else None


def fault_response(fault: Fault) -> Response:
    """An injected fault as Graph's front door would answer it."""
    retry = (("Retry-After", str(fault.retry_after)),) if fault.retry_after is not None else ()
    if fault.kind == "429":
        return graph_api.graph_error(
            429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", retry
        )
    if fault.kind == "503":
        return graph_api.graph_error(503, "ServiceNotAvailable", "The service is temporarily unavailable.", retry)
    if fault.kind == "500":
        return graph_api.graph_error(500, "UnknownError", "An internal server error occurred.")
    if fault.kind == "403":
        return graph_api.graph_error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    return text_response(html_error_page(fault.status), fault.status, "text/html; charset=UTF-8")


class MicrosoftApp:
    """Handler for everything under /microsoft (see Sandbox.microsoft_settings for the URLs)."""

    def __init__(self, state: MicrosoftState) -> None:
        self.state = state

    def __call__(self, req: Request) -> Response:
        state = self.state
        identity = _IDENTITY.match(req.path)
        if identity is not None:
            kind = _IDENTITY_KINDS[identity.group("rest")]
            label = f"token:{(req.form().get('grant_type') or ['none'])[0]}" if kind == "token" else kind
            return self._guarded(req, kind, label, lambda: self._identity(req, kind, identity.group("tenant")))
        if not req.path.startswith(GRAPH_PREFIX + "/"):
            state.stats.call("unknown")
            return graph_api.graph_error(404, "UnknownError", f"Resource not found for {req.full_path}.")
        route = graph_kind(req.path[len(GRAPH_PREFIX) :])
        if route is None:
            state.stats.call("unknown")
            return graph_api.graph_error(400, "BadRequest", f"Resource not found for the segment in {req.full_path}.")
        return self._guarded(req, route[0], route[0], lambda: self._graph(req, route[0], route[1]))

    def _guarded(self, req: Request, kind: str, label: str, serve: Callable[[], Response]) -> Response:
        """Count, check early retries, maybe inject a fault, serve, remember any Retry-After."""
        state = self.state
        user = state.identity.peek_user(bearer(req))
        client = user or f"ip:{req.client}"
        state.faults.check_early(client, kind)
        state.faults.delay()
        state.stats.call(label, user)
        fault = state.faults.draw("request", kind)
        resp = fault_response(fault) if fault is not None else serve()
        state.stats.status(resp.status)
        self._note_retry(client, resp)
        return resp

    def _note_retry(self, client: str, resp: Response) -> None:
        """Remember a Retry-After sent to `client` (answer or part): Graph throttles a mailbox, not a request."""
        retry = resp.header("Retry-After")
        if retry is not None and retry.isdigit():
            self.state.faults.note_retry_after(client, int(retry))

    def _identity(self, req: Request, kind: str, tenant: str) -> Response:
        identity, base = self.state.identity, microsoft_oauth.issuer_base(req, MOUNT)
        if kind == "discovery":
            return microsoft_oauth.discovery(identity, base, tenant)
        if kind == "keys":
            return microsoft_oauth.keys(identity, base)
        if kind == "authorize":
            return microsoft_oauth.authorize(identity, req)
        return microsoft_oauth.token(identity, req, base)

    def _graph(self, req: Request, kind: str, arg: str) -> Response:
        access = self.state.identity.authenticate(bearer(req))
        if access is None:
            message = (
                "Access token is empty." if not bearer(req) else "Lifetime validation failed, the token is expired."
            )
            return graph_api.graph_error(
                401,
                "InvalidAuthenticationToken",
                message,
                (("WWW-Authenticate", 'Bearer realm="", error="invalid_token"'),),
            )
        if kind == "batch":
            if req.method != "POST":
                return graph_api.graph_error(405, "BadRequest", "$batch takes POST.")
            resp, parts = handle_batch(req, lambda sub: self._part(sub, access), self.state.max_batch_requests)
            if parts:
                self.state.stats.call("batch_parts", access.user, parts, http=False)
            return resp
        return self._serve(req, kind, arg, access)

    def _part(self, sub: Request, access: Access) -> Response:
        """One request of a batch: same routes, no nested batch, per-part faults binding the whole client."""
        route = graph_kind(sub.path)
        if route is None or route[0] == "batch":
            return graph_api.graph_error(400, "BadRequest", f"Unsupported request in a batch: {sub.path}")
        fault = self.state.faults.draw("part", route[0])
        if fault is not None:
            resp = fault_response(fault)
            self._note_retry(access.user, resp)
            return resp
        self.state.stats.op(route[0], access.user)
        return self._serve(sub, route[0], route[1], access)

    def _serve(self, req: Request, kind: str, arg: str, access: Access) -> Response:
        state = self.state
        if req.method != "GET":
            return graph_api.graph_error(405, "ErrorInvalidRequest", f"{req.method} is not supported here.")
        if kind == "me":
            return graph_api.me(state, req, access)
        if kind == "mail_delta":
            return graph_api.mail_delta(state, req, access, arg)
        if kind == "calendar_delta":
            return graph_api.calendar_delta(state, req, access)
        if kind == "contacts_delta":
            return graph_api.contacts_delta(state, req, access)
        return graph_api.get_event(state, req, access, arg)
