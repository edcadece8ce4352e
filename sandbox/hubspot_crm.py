"""The CRM endpoints (v3 objects list/get/search/batch read, owners, v4 association batch read) over HTTP."""

from __future__ import annotations

import json
from typing import Any

from sandbox.http import Request, Response, json_response
from sandbox.hubspot_auth import EMAIL_CONTENT_SCOPE
from sandbox.hubspot_errors import not_found, validation
from sandbox.hubspot_search import SearchError
from sandbox.hubspot_state import HubspotState

# what an app without sales-email-read never sees of a logged email
EMAIL_CONTENT = frozenset(
    {"hs_email_subject", "hs_email_text", "hs_email_html", "hs_email_headers", "hs_email_message_id"}
)


def _flag(req: Request, name: str) -> bool:
    return (req.arg(name) or "false").lower() == "true"


def _csv(req: Request, name: str) -> list[str] | None:
    values = [v for raw in req.args(name) for v in raw.split(",") if v]
    return values or None


def _redact(object_type: str, scopes: frozenset[str]) -> frozenset[str]:
    return EMAIL_CONTENT if object_type == "emails" and EMAIL_CONTENT_SCOPE not in scopes else frozenset()


def _body(req: Request) -> Any:
    try:
        return req.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise SearchError(f"Invalid input JSON: {exc}") from None


def handle(state: HubspotState, kind: str, params: list[str], req: Request, scopes: frozenset[str]) -> Response:
    """Serve one CRM call; a malformed request is HubSpot's 400 VALIDATION_ERROR."""
    try:
        with state.lock:
            return _dispatch(state, kind, params, req, scopes)
    except SearchError as exc:
        return validation(str(exc))
    except KeyError as exc:
        return not_found(f"Unknown object type or id: {exc}")


def _dispatch(state: HubspotState, kind: str, params: list[str], req: Request, scopes: frozenset[str]) -> Response:
    store = state.store
    if kind == "owners":
        limit = int(req.arg("limit") or 100)
        page = store.owners_page(
            limit=limit, after=req.arg("after"), archived=_flag(req, "archived"), email=req.arg("email")
        )
        return json_response(_repeat(state, req, page))
    object_type = params[0]
    redact = _redact(object_type, scopes)
    if kind == "list":
        page = store.list_page(
            object_type,
            limit=int(req.arg("limit") or 10),
            after=req.arg("after"),
            properties=_csv(req, "properties"),
            associations=_csv(req, "associations") or [],
            archived=_flag(req, "archived"),
            redact=redact,
        )
        return json_response(_repeat(state, req, page))
    if kind == "get":
        record = store.get(object_type, int(params[1])) if params[1].isdigit() else None
        if record is None or record.archived != _flag(req, "archived"):
            return not_found(f"Object not found.  objectId are usually numeric. ({params[1]})")
        return json_response(store.render(record, _csv(req, "properties"), redact))
    if kind == "search":
        return json_response(store.search(object_type, _body(req), redact))
    if kind == "batch_read":
        status, body = store.batch_read(object_type, _body(req), redact)
        return json_response(body, status)
    if kind == "associations":
        status, body = store.associations(params[0], params[1], _body(req))
        return json_response(body, status)
    raise KeyError(kind)


def _repeat(state: HubspotState, req: Request, page: dict[str, Any]) -> dict[str, Any]:
    """The `repeat_after` knob: answer with the cursor the client sent, as a buggy server might."""
    after = req.arg("after")
    if state.repeat_after and after and "paging" in page:
        page = json.loads(json.dumps(page))
        page["paging"]["next"]["after"] = after
    return page
