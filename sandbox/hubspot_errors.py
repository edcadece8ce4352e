"""HubSpot's error bodies ({"status": "error", "message", "category", "correlationId"}) and OAuth errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sandbox.faults import Fault, html_error_page
from sandbox.http import Response, json_response, text_response


def api_error(
    status: int, message: str, category: str, headers: Iterable[tuple[str, str]] = (), **extra: Any
) -> Response:
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return json_response(body, status, headers)


def unauthorized(expired: bool) -> Response:
    if expired:
        return api_error(
            401,
            "The OAuth token used to make this call expired.",
            "EXPIRED_AUTHENTICATION",
        )
    return api_error(
        401,
        "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
        "INVALID_AUTHENTICATION",
    )


def missing_scopes(required: Iterable[str]) -> Response:
    return api_error(
        403,
        "This app hasn't been granted all required scopes to make this call.",
        "MISSING_SCOPES",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": sorted(required)},
            }
        ],
    )


def validation(message: str) -> Response:
    return api_error(400, message, "VALIDATION_ERROR")


def not_found(message: str = "Resource not found") -> Response:
    return api_error(404, message, "OBJECT_NOT_FOUND")


def rate_limited(policy: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """429 as HubSpot sends it: the policy that tripped in the body, no Retry-After."""
    return json_response(
        {
            "status": "error",
            "message": f"You have reached your {policy.lower()} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "groupName": "publicapi:oauth:sandbox",
        },
        429,
        headers,
    )


def fault_response(fault: Fault) -> Response:
    """An injected failure in HubSpot's format (a 429 also carries the injector's Retry-After)."""
    if fault.kind == "502html":
        return text_response(html_error_page(fault.status), fault.status, "text/html; charset=UTF-8")
    retry = (("Retry-After", str(fault.retry_after)),) if fault.retry_after is not None else ()
    if fault.status == 429:
        return rate_limited("TEN_SECONDLY_ROLLING", retry)
    if fault.status == 403:
        return missing_scopes(["crm.objects.contacts.read"])
    return api_error(fault.status, "Internal error, please try again.", "INTERNAL_ERROR", retry)


def oauth_error(status: int, code: str, message: str) -> Response:
    """The token endpoint's error shape: {"status": "BAD_REFRESH_TOKEN", "message": ...}."""
    return json_response(
        {"status": code, "message": message, "correlationId": str(uuid.uuid4()), "requestId": str(uuid.uuid4())},
        status,
    )
