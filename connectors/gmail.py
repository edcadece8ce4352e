"""Gmail as a source: one page of the `messages` stream per call, under the gmail.metadata scope.

That scope refuses `q` and format=full, so a full pass lists every message id newest first and reads
headers in batches of 100, stopping at the backfill window; afterwards history.list replays changes.
A new connection's first listing page holds 50 ids (FIRST_PAGE_MAX), so its first mail is stored after one
small batch instead of a page of 500 (time to first data); the pages after it list 500.

Cursor, stored verbatim by the sync layer:
  {"phase": "full", "history_id": H, "page_token": T}   a full pass in progress (H from getProfile at its
                                                         start, so the history after it covers the pass)
  {"phase": "incremental", "history_id": H}             caught up at H
  {"phase": "incremental", "history_id": H, "page_token": T}   mid-way through the history after H

Batch parts Google still throttles after the in-place retries do not lose the page: it comes back with
what was fetched, `retry_after` set, and the ids not fetched as "pending" in its cursor; the next call
fetches those alone, then the pass goes on where it was:
  {"phase": "full", "history_id": H, "pending": [ids], "window_ended": B, "page_token": T}
      T (absent when the listing had no next page) is the NEXT listing page; B: the window already ended
  {"phase": "incremental", "history_id": H, "pending": [ids], "page_token": T}
      mid-way through the history after H (T: its next page)
  {"phase": "incremental", "history_id": H, "pending": [ids], "latest_history_id": L}
      the history's last page was read: caught up at L once nothing is pending (H until then)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import (
    JSON,
    ConnectorError,
    CursorExpired,
    Deletion,
    FetchContext,
    Observation,
    Page,
    Rejection,
)
from connectors.emails import InvalidAddress, normalize_email
from connectors.gmail_history import replay
from connectors.gmail_mapping import SOURCE, internal_date, map_message
from connectors.google_batch import BatchResult, by_template, fetch_in_batches
from connectors.google_http import GoogleApi, open_api

name: str = "gmail"
provider: str = "google"
streams: tuple[str, ...] = ("messages",)
scopes: tuple[str, ...] = ("https://www.googleapis.com/auth/gmail.metadata",)

BATCH_PATH = "batch/gmail/v1"
METADATA_HEADERS = [
    "From", "To", "Cc", "Bcc", "Date", "Message-ID", "Subject", "List-Id", "List-Unsubscribe", "Precedence",
]  # fmt: skip
MESSAGE_FIELDS = "id,labelIds,internalDate,payload/headers"  # no snippet: bodies are never read
LIST_PAGE_MAX = 500
FIRST_PAGE_MAX = 50  # the first page of a full pass: what a rep sees first lands after one batch of 50
HISTORY_PAGE_MAX = 500
HISTORY_TYPES = ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"]
HISTORY_FIELDS = (
    "history(messagesAdded/message(id,labelIds),messagesDeleted/message/id,"
    "labelsAdded(message(id,labelIds),labelIds),labelsRemoved(message(id,labelIds),labelIds)),"
    "nextPageToken,historyId"
)


@dataclass
class _PageBuilder:
    """Observations and rejections gathered for one page."""

    ctx: FetchContext
    observations: list[Observation] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # ids left throttled, for the next page
    retry_after: float = 0.0
    oldest_received: datetime | None = None  # the listing is newest first: how far back the pass has read
    resource: Any = None  # users().messages(), built once a page: the library makes each of its methods anew

    def messages(self, api: GoogleApi) -> Any:
        """The page's users().messages() resource (0.7 ms to build, once for the listing and its batches)."""
        if self.resource is None:
            self.resource = api.service.users().messages()
        return self.resource

    def add_batch(self, result: BatchResult, oldest: datetime) -> list[str]:
        """Map a batch's messages, skipping those received before `oldest`; return the skipped ids."""
        self.rejections.extend(Rejection(SOURCE, i, "fetch_failed", text) for i, text in result.failed.items())
        skipped: list[str] = []
        for message_id, message in result.found.items():
            received = internal_date(message)
            if received is not None and received < oldest:
                skipped.append(message_id)
                continue
            if received is not None and (self.oldest_received is None or received < self.oldest_received):
                self.oldest_received = received
            mapped = map_message(message)
            if mapped.observation is not None:
                self.observations.append(mapped.observation)
            self.rejections.extend(mapped.rejections)
        return skipped

    def fetch(self, api: GoogleApi, ids: Sequence[str], oldest: datetime, *, stop_at_window: bool) -> list[str]:
        """Fetch and map `ids`; ids left throttled go to `pending`. Return the ids skipped as too old.

        With `stop_at_window` (a listing, newest first) no batch is sent after one reaching past the window.
        """
        skipped: list[str] = []
        for result in _fetch_messages(api, self.messages(api), ids):
            old = self.add_batch(result, oldest)
            skipped.extend(old)
            self.retry_after = max(self.retry_after, result.retry_after)
            if stop_at_window and old:
                self.pending.extend(result.throttled)  # the unsent ids are older still
                break
            self.pending.extend(result.pending)
        return skipped

    def page(self, api: GoogleApi, cursor: JSON, *, done: bool, full_resync: bool) -> Page:
        retry_after = self.retry_after if self.pending else 0.0
        progress = self.window_read() if full_resync else None
        return Page(self.observations, self.rejections, cursor, done, api.calls, full_resync, retry_after, progress)

    def window_read(self) -> float | None:
        """The share of the backfill window read so far, from the oldest message this page reached."""
        if self.oldest_received is None:
            return None
        return (_now(self.ctx) - self.oldest_received) / timedelta(days=self.ctx.backfill_days)


def _fetch_messages(api: GoogleApi, messages: Any, ids: Sequence[str]) -> Iterator[BatchResult]:
    """Metadata of `ids` through the users().messages() resource, lazily, one batch of up to 100 at a time."""

    def get(message_id: str) -> Any:
        return messages.get(
            userId="me",
            id=message_id,
            format="metadata",
            metadataHeaders=METADATA_HEADERS,
            fields=MESSAGE_FIELDS,
        )

    return fetch_in_batches(api, ids, by_template(get), BATCH_PATH, "gmail users.messages.get")


def _full_pass_page(api: GoogleApi, cursor: JSON | None, ctx: FetchContext) -> Page:
    """One messages.list page of the full pass and its headers; the pass ends at the backfill window.

    A cursor with pending ids fetches those alone, and the listing goes on at the next call.
    """
    oldest = _window_start(ctx)
    builder = _PageBuilder(ctx)
    if cursor is not None and "pending" in cursor:
        history_id, next_token = str(cursor["history_id"]), cursor.get("page_token")
        window_ended = bool(builder.fetch(api, cursor["pending"], oldest, stop_at_window=True))
        return _full_pass_next(api, builder, history_id, next_token, window_ended or bool(cursor.get("window_ended")))
    if cursor is None:
        profile = api.execute(api.service.users().getProfile(userId="me"), "gmail users.getProfile")
        if not profile.get("historyId"):
            raise ConnectorError("gmail users.getProfile: no historyId in the answer")
        history_id, page_token, page_max = str(profile["historyId"]), None, FIRST_PAGE_MAX
    else:
        history_id, page_token, page_max = str(cursor["history_id"]), cursor.get("page_token"), LIST_PAGE_MAX
    listing = api.execute(
        builder.messages(api).list(
            userId="me",
            maxResults=min(ctx.page_size, page_max),
            pageToken=page_token,
            fields="messages/id,nextPageToken",
        ),
        "gmail users.messages.list",
    )
    listed = listing.get("messages") or ()
    ids = [m["id"] for m in listed if isinstance(m, dict) and isinstance(m.get("id"), str)]
    window_ended = bool(builder.fetch(api, ids, oldest, stop_at_window=True))
    return _full_pass_next(api, builder, history_id, listing.get("nextPageToken"), window_ended)


def _full_pass_next(
    api: GoogleApi, builder: _PageBuilder, history_id: str, next_token: str | None, window_ended: bool
) -> Page:
    """The full-pass page with its cursor: pending ids first, then the next listing page, then done."""
    if builder.pending:
        pending: JSON = {
            "phase": "full",
            "history_id": history_id,
            "pending": builder.pending,
            "window_ended": window_ended,
        }
        if next_token:
            pending["page_token"] = next_token
        return builder.page(api, pending, done=False, full_resync=True)
    if next_token and not window_ended:
        next_cursor: JSON = {"phase": "full", "history_id": history_id, "page_token": next_token}
        return builder.page(api, next_cursor, done=False, full_resync=True)
    return builder.page(api, {"phase": "incremental", "history_id": history_id}, done=True, full_resync=True)


def _window_start(ctx: FetchContext) -> datetime:
    """Mail received before this is outside the backfill window (data minimization), in every phase."""
    return _now(ctx) - timedelta(days=ctx.backfill_days)


def _now(ctx: FetchContext) -> datetime:
    """The context's clock as an aware UTC time."""
    return ctx.now if ctx.now.tzinfo is not None else ctx.now.replace(tzinfo=UTC)


def _history_page(api: GoogleApi, cursor: JSON, ctx: FetchContext) -> Page:
    """One history.list page: deletions straight from it, additions fetched in batches.

    A cursor with pending ids fetches those alone; the history id advances once nothing is pending.
    """
    history_id = str(cursor["history_id"])
    builder = _PageBuilder(ctx)
    oldest = _window_start(ctx)
    if "pending" in cursor:
        next_token, latest = cursor.get("page_token"), str(cursor.get("latest_history_id") or history_id)
        # old mail coming back (restored from Trash, imported) stays out, as a full pass would leave it
        builder.observations.extend(
            Deletion(SOURCE, i) for i in builder.fetch(api, cursor["pending"], oldest, stop_at_window=False)
        )
        return _history_next(api, builder, history_id, next_token, latest)
    response = api.execute(
        api.service.users()
        .history()
        .list(
            userId="me",
            startHistoryId=history_id,
            historyTypes=HISTORY_TYPES,
            maxResults=HISTORY_PAGE_MAX,
            pageToken=cursor.get("page_token"),
            fields=HISTORY_FIELDS,
        ),
        "gmail users.history.list",
        not_found=CursorExpired,
    )
    changes = replay(response.get("history") or ())
    builder.observations.extend(Deletion(SOURCE, message_id) for message_id in changes.delete)
    # old mail coming back (restored from Trash, imported) stays out, as a full pass would leave it
    builder.observations.extend(
        Deletion(SOURCE, i) for i in builder.fetch(api, changes.fetch, oldest, stop_at_window=False)
    )
    latest = str(response.get("historyId") or history_id)
    return _history_next(api, builder, history_id, response.get("nextPageToken"), latest)


def _history_next(api: GoogleApi, builder: _PageBuilder, history_id: str, next_token: str | None, latest: str) -> Page:
    """The history page with its cursor: pending ids first, then the next history page, then caught up."""
    if builder.pending:
        pending: JSON = {"phase": "incremental", "history_id": history_id, "pending": builder.pending}
        if next_token:
            pending["page_token"] = next_token
        else:
            pending["latest_history_id"] = latest
        return builder.page(api, pending, done=False, full_resync=False)
    if next_token:
        next_cursor: JSON = {"phase": "incremental", "history_id": history_id, "page_token": next_token}
        return builder.page(api, next_cursor, done=False, full_resync=False)
    return builder.page(api, {"phase": "incremental", "history_id": latest}, done=True, full_resync=False)


def fetch_page(stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` (None starts a full pass); see the module docstring for the cursor."""
    if stream not in streams:
        raise ConnectorError(f"gmail has no stream {stream!r}; it has {streams}")
    phase = None if cursor is None else cursor.get("phase")
    if cursor is not None and (phase not in ("full", "incremental") or not cursor.get("history_id")):
        raise CursorExpired(f"gmail cursor not understood: phase={phase!r}")
    pending = [] if cursor is None else cursor.get("pending", [])
    if not isinstance(pending, list) or not all(isinstance(i, str) for i in pending):
        raise CursorExpired("gmail cursor not understood: pending is not a list of ids")
    api = open_api(ctx, "gmail", "v1")
    if phase == "incremental" and cursor is not None:
        return _history_page(api, cursor, ctx)
    return _full_pass_page(api, cursor, ctx)


def whoami(ctx: FetchContext) -> str:
    """The mailbox's own address from users.getProfile, normalized."""
    api = open_api(ctx, "gmail", "v1")
    profile = api.execute(api.service.users().getProfile(userId="me"), "gmail users.getProfile")
    try:
        return normalize_email(str(profile.get("emailAddress", "")))
    except InvalidAddress as exc:
        raise ConnectorError(f"gmail users.getProfile: no usable emailAddress ({exc.reason})") from None
