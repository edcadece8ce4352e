"""Google's error bodies: the JSON API envelope, OAuth endpoint errors, and injected-fault renderings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sandbox.faults import Fault, html_error_page
from sandbox.http import Response, json_response, text_response

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}
REALM = 'Bearer realm="https://accounts.google.com/"'


def api_error(
    code: int,
    message: str,
    reason: str,
    *,
    domain: str = "global",
    headers: tuple[tuple[str, str], ...] = (),
    extra: dict[str, str] | None = None,
) -> Response:
    """`{"error": {"code", "message", "errors": [{message, domain, reason}], "status"}}`, as Google."""
    detail: dict[str, str] = {"message": message, "domain": domain, "reason": reason}
    if extra:
        detail.update(extra)
    body = {
        "error": {
            "code": code,
            "message": message,
            "errors": [detail],
            "status": STATUS_NAMES.get(code, "UNKNOWN"),
        }
    }
    return json_response(body, code, (("Vary", "Origin"), *headers))


def unauthenticated() -> Response:
    return api_error(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "authError",
        headers=(("WWW-Authenticate", f'{REALM}, error="invalid_token"'),),
        extra={"location": "Authorization", "locationType": "header"},
    )


def insufficient_scope(required: str) -> Response:
    return api_error(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        headers=(("WWW-Authenticate", f'{REALM}, error="insufficient_scope", scope="{required}"'),),
    )


def not_found() -> Response:
    return api_error(404, "Requested entity was not found.", "notFound")


def bad_request(message: str, reason: str = "invalidArgument") -> Response:
    return api_error(400, message, reason)


def rate_limited(retry_after: int, *, user_403: bool = False) -> Response:
    """429 rateLimitExceeded with Retry-After, or Gmail's 403 userRateLimitExceeded."""
    until = (datetime.now(UTC) + timedelta(seconds=retry_after)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if user_403:
        return api_error(
            403,
            f"User-rate limit exceeded.  Retry after {until}",
            "userRateLimitExceeded",
            domain="usageLimits",
            headers=(("Retry-After", str(retry_after)),),
        )
    return api_error(
        429,
        f"Too many concurrent requests for user.  Retry after {until}",
        "rateLimitExceeded",
        domain="usageLimits",
        headers=(("Retry-After", str(retry_after)),),
    )


def fault_response(fault: Fault) -> Response:
    """An injected fault rendered the way Google's front ends would answer."""
    if fault.kind == "429":
        return rate_limited(fault.retry_after or 1)
    if fault.kind == "403":
        return api_error(403, "User Rate Limit Exceeded", "userRateLimitExceeded", domain="usageLimits")
    if fault.kind == "500":
        return api_error(500, "Backend Error", "backendError")
    if fault.kind == "503":
        resp = api_error(503, "The service is currently unavailable.", "backendError")
        if fault.retry_after is not None:
            resp.headers.append(("Retry-After", str(fault.retry_after)))
        return resp
    return text_response(html_error_page(fault.status), fault.status, "text/html; charset=UTF-8")


def oauth_error(status: int, error: str, description: str | None = None) -> Response:
    """Token/revoke endpoint error: `{"error": ..., "error_description": ...}`."""
    body: dict[str, str] = {"error": error}
    if description is not None:
        body["error_description"] = description
    return json_response(
        body,
        status,
        (("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"), ("Pragma", "no-cache")),
    )
