"""Google Contacts as a source: the rep's address book and "other contacts", via the People API.

Streams: `connections` (people.connections.list, personFields names, emailAddresses, phoneNumbers,
organizations, metadata) and `other_contacts` (otherContacts.list, readMask names, emailAddresses,
phoneNumbers, metadata), each in pages of 1,000 (the API's ceiling: 10 calls per 10,000 contacts). A full
pass asks for a sync token (requestSyncToken), which comes on its last page; afterwards the same request
with that syncToken returns what changed, deleted people flagged metadata.deleted (-> Deletion). An
expired token (400 FAILED_PRECONDITION, reason EXPIRED_SYNC_TOKEN) -> CursorExpired.

whoami: People's people/me needs profile scopes this source does not otherwise want, so it asks for
userinfo.email and reads the address from oauth2/v2/userinfo.

Cursor, per stream, stored verbatim by the sync layer:
  {"phase": "full", "page_token": T}                          a full pass in progress
  {"phase": "incremental", "sync_token": S}                   caught up at S
  {"phase": "incremental", "sync_token": S, "page_token": T}  mid-way through the changes since S
"""

from __future__ import annotations

from typing import Any

from connectors.base import JSON, ConnectorError, CursorExpired, FetchContext, Observation, Page, Rejection
from connectors.emails import InvalidAddress, normalize_email
from connectors.google_http import GoogleApi, GoogleError, open_api
from connectors.people_mapping import map_person

name: str = "google_contacts"
provider: str = "google"
streams: tuple[str, ...] = ("connections", "other_contacts")
scopes: tuple[str, ...] = (
    "https://www.googleapis.com/auth/contacts.readonly",
    "https://www.googleapis.com/auth/contacts.other.readonly",
    "https://www.googleapis.com/auth/userinfo.email",
)

PAGE_MAX = 1000
PERSON_FIELDS = "names,emailAddresses,phoneNumbers,organizations,metadata"
OTHER_FIELDS = "names,emailAddresses,phoneNumbers,metadata"
KINDS = {"connections": "contact", "other_contacts": "other_contact"}
EXPIRED_REASON = "EXPIRED_SYNC_TOKEN"


def _expired(error: GoogleError) -> bool:
    return error.status == 400 and (
        EXPIRED_REASON in error.reasons or error.message.startswith("Sync token is expired")
    )


def _request(api: GoogleApi, stream: str, cursor: JSON | None) -> Any:
    """The list call of `stream` for this cursor (same parameters on every page and every sync)."""
    args: dict[str, Any] = {"pageSize": PAGE_MAX, "requestSyncToken": True}
    if cursor is not None:
        args["pageToken"] = cursor.get("page_token")
        args["syncToken"] = cursor.get("sync_token")
    if stream == "connections":
        return api.service.people().connections().list(resourceName="people/me", personFields=PERSON_FIELDS, **args)
    return api.service.otherContacts().list(readMask=OTHER_FIELDS, **args)


def _check(cursor: JSON | None) -> None:
    phase = None if cursor is None else cursor.get("phase")
    if cursor is None:
        return
    if phase == "full" and cursor.get("page_token"):
        return
    if phase == "incremental" and cursor.get("sync_token"):
        return
    raise CursorExpired(f"google_contacts cursor not understood: phase={phase!r}")


def fetch_page(stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` (None starts a full pass); see the module docstring for the cursor."""
    if stream not in streams:
        raise ConnectorError(f"google_contacts has no stream {stream!r}; it has {streams}")
    _check(cursor)
    api = open_api(ctx, "people", "v1")
    what = f"google_contacts {'people.connections' if stream == 'connections' else 'otherContacts'}.list"
    response = api.execute(_request(api, stream, cursor), what, expired=_expired)
    observations: list[Observation] = []
    rejections: list[Rejection] = []
    for person in response.get("connections" if stream == "connections" else "otherContacts") or ():
        if isinstance(person, dict):
            mapped = map_person(person, KINDS[stream])
            if mapped.observation is not None:
                observations.append(mapped.observation)
            rejections.extend(mapped.rejections)
    full = cursor is None or cursor.get("phase") == "full"
    next_token = response.get("nextPageToken")
    if next_token:
        if cursor is not None and next_token == cursor.get("page_token"):
            raise ConnectorError(f"{what}: the same page token came back twice")
        after: JSON = {"phase": "full", "page_token": next_token}
        if not full and cursor is not None:
            after = {"phase": "incremental", "sync_token": cursor["sync_token"], "page_token": next_token}
        return Page(observations, rejections, after, False, api.calls, full)
    sync_token = response.get("nextSyncToken")
    if not sync_token:
        raise ConnectorError(f"{what}: last page without nextSyncToken")
    return Page(observations, rejections, {"phase": "incremental", "sync_token": sync_token}, True, api.calls, full)


def whoami(ctx: FetchContext) -> str:
    """The account's address from oauth2/v2/userinfo (needs the userinfo.email scope)."""
    api = open_api(ctx, "oauth2", "v2")
    info = api.execute(api.service.userinfo().get(fields="email"), "google_contacts userinfo.get")
    try:
        return normalize_email(str(info.get("email", "")))
    except InvalidAddress as exc:
        raise ConnectorError(f"google_contacts userinfo.get: no usable email ({exc.reason})") from None
