"""People API v1 (people.connections.list, otherContacts.list) with page tokens and expiring sync tokens.

As the reference says: pageSize 1..1000 (0 or absent: 100), personFields / readMask required, the
next sync token only on the last page of a request with requestSyncToken, a syncToken returns the
contacts changed since (deleted ones as metadata.deleted), all other parameters of a paged or synced
request must match the first call, and an expired token is a 400 FAILED_PRECONDITION whose ErrorInfo
reason is EXPIRED_SYNC_TOKEN. Listings are in last-modified order, so a contact changed while a client
pages moves behind it; the sync token handed out is the change counter when the first page was served.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from sandbox.gcal_query import ArgError, bool_arg, int_arg
from sandbox.gcal_tokens import Signer, filter_key
from sandbox.google_state import AccessToken, GoogleState
from sandbox.http import Request, Response, json_response
from sandbox.people_render import CONNECTION_FIELDS, OTHER_FIELDS, person_resource, rpc_error
from sandbox.people_store import Contact

_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^/v1/(people/[^/]+)/connections$"), "connections"),
    (re.compile(r"^/v1/otherContacts$"), "other_contacts"),
)
CONTACT_SCOPES = frozenset(
    {"https://www.googleapis.com/auth/contacts", "https://www.googleapis.com/auth/contacts.readonly"}
)
OTHER_SCOPES = frozenset({"https://www.googleapis.com/auth/contacts.other.readonly"})
PAGE_DEFAULT, PAGE_MAX = 100, 1000
EXPIRED = "Sync token is expired. Clear local cache and retry call without the sync token."


def _bad(message: str) -> Response:
    return rpc_error(400, message)


class PeopleApi:
    """Answers one authorised People operation; auth, quota, faults and counting happen in google_app."""

    kinds = frozenset({"connections", "other_contacts"})

    def __init__(self, state: GoogleState) -> None:
        self.state = state
        self.signer = Signer(state.world.seed if state.world is not None else 0, "people")

    @staticmethod
    def match(path: str) -> tuple[str, list[str]] | None:
        for pattern, kind in _ROUTES:
            m = pattern.match(path)
            if m:
                return kind, [urllib.parse.unquote(g) for g in m.groups()]
        return None

    @staticmethod
    def scopes(kind: str) -> frozenset[str]:
        return CONTACT_SCOPES if kind == "connections" else OTHER_SCOPES

    def handle(self, kind: str, params: list[str], req: Request, token: AccessToken) -> Response:
        if req.method != "GET":
            return rpc_error(405, "Method not allowed.")
        if kind == "connections" and params[0] != "people/me":
            return _bad("Only people/me is valid as the resource name.")
        try:
            result = self._list(req, token.mailbox, "connections" if kind == "connections" else "other")
        except ArgError as exc:
            return exc.response
        return result if isinstance(result, Response) else json_response(result)

    def _mask(self, req: Request, book: str) -> tuple[str, frozenset[str]] | Response:
        name, valid = ("personFields", CONNECTION_FIELDS) if book == "connections" else ("readMask", OTHER_FIELDS)
        raw = req.arg(name) or ""
        legacy = req.arg("requestMask.includeField") or ""
        if not raw and book == "connections" and legacy:
            raw = ",".join(p.strip().removeprefix("person.") for p in legacy.split(","))
        if not raw:
            return _bad(f"{name} mask is required. Please specify one or more valid paths.")
        fields = frozenset(p.strip() for p in raw.split(",") if p.strip())
        wrong = sorted(fields - valid)
        if wrong:
            return _bad(f'Invalid {name} mask path: "{wrong[0]}".')
        return raw, fields

    def _list(self, req: Request, member: str, book: str) -> dict[str, Any] | Response:
        mask = self._mask(req, book)
        if isinstance(mask, Response):
            return mask
        raw_mask, fields = mask
        size = int_arg(req, "pageSize", 0, _bad) or PAGE_DEFAULT
        if not 1 <= size <= PAGE_MAX:
            return _bad(f"pageSize must be between 1 and {PAGE_MAX}.")
        want_sync = bool(bool_arg(req, "requestSyncToken", _bad))
        if req.arg("sortOrder") not in (None, "LAST_MODIFIED_ASCENDING"):
            return _bad("The sandbox lists contacts in LAST_MODIFIED_ASCENDING order only.")
        sync_key = filter_key(book, raw_mask, tuple(req.args("sources")))
        scope = f"{member}/{book}"
        store = self.state.people
        since: int | None = None
        sync_token = req.arg("syncToken")
        with store.lock:
            if sync_token:
                parts = self.signer.unsign(sync_token, "S", 3)
                if parts is None or parts[0] != scope or parts[2] != sync_key:
                    return _bad("Request contains an invalid argument: syncToken does not match this request.")
                since = int(parts[1])
                if not store.changes.valid(scope, since, self.state.people_sync_retention):
                    return rpc_error(400, EXPIRED, "FAILED_PRECONDITION", "EXPIRED_SYNC_TOKEN")
            page_key = filter_key(sync_key, sync_token, want_sync, size)
            first_seq, after = store.seq, (-1, "")
            if req.arg("pageToken"):
                parts = self.signer.unsign(req.arg("pageToken") or "", "P", 5)
                if parts is None or parts[0] != scope or parts[1] != page_key:
                    return _bad("Request contains an invalid argument: pageToken does not match this request.")
                first_seq, after = int(parts[2]), (int(parts[3]), parts[4])
            entries = store.book(member, book).values()
            changed = [c for c in entries if (c.seq > since if since is not None else not c.deleted)]
            items = sorted((c for c in changed if (c.seq, c.resource_name) > after), key=_key)
            body = self._body(book, items[:size], fields, len(changed))
            if len(items) > size:
                last = items[size - 1]
                body["nextPageToken"] = self.signer.sign("P", scope, page_key, first_seq, *_key(last))
            elif want_sync:
                body["nextSyncToken"] = self.signer.sign("S", scope, first_seq, sync_key)
        return body

    @staticmethod
    def _body(book: str, page: list[Contact], fields: frozenset[str], total: int) -> dict[str, Any]:
        other = book == "other"
        people = [person_resource(c, fields, other) for c in page]
        if other:
            return {"otherContacts": people, "totalSize": total} if people else {"totalSize": total}
        body: dict[str, Any] = {"connections": people} if people else {}
        return body | {"totalPeople": total, "totalItems": total}


def _key(contact: Contact) -> tuple[int, str]:
    return contact.seq, contact.resource_name
