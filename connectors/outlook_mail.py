"""Outlook mail as a source: message delta per folder (streams `inbox` and `sent`) under Mail.ReadBasic.

A full pass is the folder's initial delta round, limited to the backfill window on the server with
`$filter=receivedDateTime ge …` (the one filter message delta supports, kept in Graph's tokens);
later rounds replay changes from the @odata.deltaLink. 1,000 messages per call (odata.maxpagesize).
An external id is "<stream>:<Graph immutable id>", so a copy's removal from one folder never touches
another stream's copy. Cursor: see connectors.graph_delta.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from connectors.base import JSON, ConnectorError, Deletion, FetchContext, Observation, Page, Rejection
from connectors.graph_delta import fetch_delta
from connectors.graph_http import me_address, open_graph
from connectors.outlook_mail_mapping import SELECT, SOURCE, map_message

name: str = SOURCE
provider: str = "microsoft"
streams: tuple[str, ...] = ("inbox", "sent")
scopes: tuple[str, ...] = ("Mail.ReadBasic", "User.Read")  # User.Read: GET /me names the mailbox
FOLDERS = {"inbox": "inbox", "sent": "sentitems"}


def _start(stream: str, ctx: FetchContext) -> tuple[str, dict[str, str]]:
    now = ctx.now if ctx.now.tzinfo is not None else ctx.now.replace(tzinfo=UTC)
    oldest = (now - timedelta(days=ctx.backfill_days)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = f"me/mailFolders/{FOLDERS[stream]}/messages/delta"
    return path, {"$select": SELECT, "$filter": f"receivedDateTime ge {oldest}"}


def fetch_page(stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` (None starts a full pass); see connectors.graph_delta for the cursor."""
    if stream not in streams:
        raise ConnectorError(f"outlook_mail has no stream {stream!r}; it has {streams}")
    client = open_graph(ctx)
    try:
        delta = fetch_delta(client, cursor, _start(stream, ctx), f"graph {FOLDERS[stream]} messages/delta")
    finally:
        client.close()
    observations: list[Observation] = [Deletion(SOURCE, f"{stream}:{i}") for i in delta.removed]
    rejections: list[Rejection] = delta.rejected(SOURCE)
    for message in delta.items:
        observation, rejected = map_message(f"{stream}:{message['id']}", message)
        if observation is not None:
            observations.append(observation)
        rejections.extend(rejected)
    return Page(observations, rejections, delta.cursor, delta.done, client.calls, delta.full_resync)


def whoami(ctx: FetchContext) -> str:
    """The mailbox's own address from GET /me, normalized."""
    return me_address(ctx)
