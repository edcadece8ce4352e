"""Microsoft Graph v1.0 resources the product reads: /me, message/event/contact delta, events by id.

Shapes follow the Graph docs: delta pages carry `@odata.nextLink` ($skiptoken) until the last one,
which carries `@odata.deltaLink` ($deltatoken); removed items are `{"id", "@removed": {"reason"}}`;
`Prefer: odata.maxpagesize=N` sizes pages; messages take `$select` and `$filter=receivedDateTime ge|gt`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sandbox.graph_delta import Match, SyncStateGone
from sandbox.http import Request, Response, json_response
from sandbox.microsoft_identity import Access, object_id
from sandbox.microsoft_state import CONTACTS, EVENTS, MAIL, MASTERS, MicrosoftState

MESSAGE_FIELDS = frozenset({
    "id", "internetMessageId", "subject", "from", "sender", "toRecipients", "ccRecipients", "bccRecipients",
    "replyTo", "receivedDateTime", "sentDateTime", "parentFolderId", "conversationId", "isDraft", "isRead",
    "internetMessageHeaders", "createdDateTime", "lastModifiedDateTime", "hasAttachments", "importance", "webLink",
})  # fmt: skip
_MAXPAGESIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)
_FILTER = re.compile(r"^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$")
ENTITY = {"mail": "message", "events": "event", "contacts": "contact"}
MAIL_SCOPES = frozenset({"Mail.ReadBasic", "Mail.Read"})


def graph_error(status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """Graph's error envelope with an innerError carrying request ids and the date."""
    inner = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": secrets.token_hex(16),
        "client-request-id": secrets.token_hex(16),
    }
    return json_response({"error": {"code": code, "message": message, "innerError": inner}}, status, headers)


def _forbidden() -> Response:
    return graph_error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _event_time(event: dict[str, Any], key: str) -> datetime | None:
    value = event.get(key)
    return _parse_time(str(value.get("dateTime", ""))) if isinstance(value, dict) else None


def page_size(state: MicrosoftState, req: Request) -> tuple[int, tuple[tuple[str, str], ...]]:
    """The page size a Prefer header asks for (capped) and the Preference-Applied header to answer."""
    match = _MAXPAGESIZE.search(req.header("prefer") or "")
    if match is None:
        return state.default_page_size, ()
    size = max(1, min(int(match.group(1)), state.max_page_size))
    return size, (("Preference-Applied", f"odata.maxpagesize={size}"),)


Render = Callable[[dict[str, Any]], dict[str, Any]]


def _delta(
    state: MicrosoftState,
    req: Request,
    access: Access,
    name: str,
    initial: Callable[[Request], tuple[tuple[str, str], ...] | Response],
    matcher: Callable[[dict[str, str]], Match],
    renderer: Callable[[dict[str, str]], Render],
) -> Response:
    """One delta page: resume the round a token names, or start one from the request's parameters."""
    token = req.arg("$skiptoken") or req.arg("$deltatoken")
    try:
        if token:
            current = state.store.resume(token, access.user)
        else:
            params = initial(req)
            if isinstance(params, Response):
                return params
            current = state.store.start(access.user, name, params)
    except SyncStateGone as exc:
        location = (
            (("Location", f"{req.base_url}{req.full_path}?$deltatoken="),) if exc.code == "resyncRequired" else ()
        )
        return graph_error(
            410,
            exc.code,
            "The sync state generation is not found or has expired; a full synchronization is required.",
            location,
        )
    size, applied = page_size(state, req)
    query = dict(current.query)
    page = state.store.page(current, size, matcher(query), renderer(query))
    base = f"{req.base_url}{req.full_path}"
    body: dict[str, Any] = {
        "@odata.context": f"{req.base_url}/microsoft/graph/v1.0/$metadata#Collection({ENTITY[name.split(':')[0]]})",
        "value": page.items,
    }
    if page.skip_token is not None:
        body["@odata.nextLink"] = f"{base}?$skiptoken={page.skip_token}"
    else:
        body["@odata.deltaLink"] = f"{base}?$deltatoken={page.delta_token}"
    return json_response(body, 200, applied)


def _message_query(req: Request) -> tuple[tuple[str, str], ...] | Response:
    select = req.arg("$select")
    if select:
        unknown = [f for f in select.split(",") if f.strip() not in MESSAGE_FIELDS]
        if unknown:
            return graph_error(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{unknown[0]}' on type 'Microsoft.OutlookServices.Message'.",
            )
    flt = req.arg("$filter")
    if flt:
        match = _FILTER.match(flt)
        if match is None or _parse_time(match.group(2)) is None:
            return graph_error(
                400,
                "ErrorInvalidUrlQueryFilter",
                "The only supported $filter on message delta is receivedDateTime ge|gt {value}.",
            )
    return tuple((k, v) for k, v in (("select", select or ""), ("filter", flt or "")) if v)


def _message_matcher(query: dict[str, str]) -> Match:
    match = _FILTER.match(query.get("filter", ""))
    if match is None:
        return lambda message: True
    op, bound = match.group(1), _parse_time(match.group(2))

    def keep(message: dict[str, Any]) -> bool:
        received = _parse_time(str(message.get("receivedDateTime", "")))
        if received is None or bound is None:
            return False
        return received >= bound if op == "ge" else received > bound

    return keep


def _message_render(query: dict[str, str], access: Access) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """$select projection; transport headers only with Mail.Read (Mail.ReadBasic excludes them)."""
    fields = [f.strip() for f in query.get("select", "").split(",") if f.strip()]
    headers_ok = "Mail.Read" in access.scopes

    def render(message: dict[str, Any]) -> dict[str, Any]:
        chosen = fields or [f for f in message if f != "internetMessageHeaders"]
        out = {"@odata.type": "#microsoft.graph.message", "@odata.etag": 'W/"CQAAABYAAAA"', "id": message["id"]}
        out.update({f: message.get(f) for f in chosen if f != "id" and (f != "internetMessageHeaders" or headers_ok)})
        return out

    return render


def mail_delta(state: MicrosoftState, req: Request, access: Access, folder: str) -> Response:
    """GET /me/mailFolders/{inbox|sentitems}/messages/delta."""
    if not access.scopes & MAIL_SCOPES:
        return _forbidden()
    return _delta(
        state, req, access, MAIL[folder], _message_query, _message_matcher, lambda query: _message_render(query, access)
    )


def _window_query(req: Request) -> tuple[tuple[str, str], ...] | Response:
    lowered = {k.lower(): v[0] for k, v in req.query.items() if v}
    start, end = lowered.get("startdatetime"), lowered.get("enddatetime")
    if not start or not end or _parse_time(start) is None or _parse_time(end) is None:
        return graph_error(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the "
            "query string parameters StartDateTime and EndDateTime.",
        )
    return (("start", start), ("end", end))


def _window_matcher(query: dict[str, str]) -> Match:
    start, end = _parse_time(query["start"]), _parse_time(query["end"])

    def keep(event: dict[str, Any]) -> bool:
        begins, ends = _event_time(event, "start"), _event_time(event, "end")
        return None not in (begins, ends, start, end) and begins < end and ends > start  # type: ignore[operator]

    return keep


def calendar_delta(state: MicrosoftState, req: Request, access: Access) -> Response:
    """GET /me/calendarView/delta?startDateTime=…&endDateTime=…: occurrences expanded, no $select."""
    if "Calendars.Read" not in access.scopes:
        return _forbidden()
    return _delta(
        state,
        req,
        access,
        EVENTS,
        _window_query,
        _window_matcher,
        lambda query: lambda e: {"@odata.type": "#microsoft.graph.event", **e},
    )


def contacts_delta(state: MicrosoftState, req: Request, access: Access) -> Response:
    """GET /me/contacts/delta (the default contacts folder)."""
    if "Contacts.Read" not in access.scopes:
        return _forbidden()
    return _delta(
        state,
        req,
        access,
        CONTACTS,
        lambda r: (),
        lambda query: lambda c: True,
        lambda query: lambda c: {"@odata.type": "#microsoft.graph.contact", **c},
    )


def get_event(state: MicrosoftState, req: Request, access: Access, event_id: str) -> Response:
    """GET /me/events/{id}[?$select=…]: an event or a series master."""
    if "Calendars.Read" not in access.scopes:
        return _forbidden()
    event = state.store.get(access.user, MASTERS, event_id) or state.store.get(access.user, EVENTS, event_id)
    if event is None:
        return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    select = [f.strip() for f in (req.arg("$select") or "").split(",") if f.strip()]
    return json_response({"id": event["id"], **({f: event.get(f) for f in select} if select else event)})


def me(state: MicrosoftState, req: Request, access: Access) -> Response:
    """GET /me: the signed-in user's profile (User.Read)."""
    if "User.Read" not in access.scopes:
        return graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    name = state.identity.users.get(access.user, access.user)
    first, _, last = name.partition(" ")
    profile = {
        "id": object_id(access.user),
        "displayName": name,
        "givenName": first,
        "surname": last or None,
        "mail": access.user,
        "userPrincipalName": access.user,
    }
    select = [f.strip() for f in (req.arg("$select") or "").split(",") if f.strip()]
    if select:
        profile = {"id": profile["id"], **{f: profile.get(f) for f in select}}
    return json_response({"@odata.context": f"{req.base_url}/microsoft/graph/v1.0/$metadata#users/$entity", **profile})
