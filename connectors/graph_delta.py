"""One page of a Graph delta round, and the cursor around it (shared by the Outlook connectors).

Cursor, stored verbatim by the sync layer:
  {"phase": "full", "link": L}          a full pass in progress; L is the @odata.nextLink to GET next
  {"phase": "incremental", "link": L}   L is the @odata.deltaLink (caught up) or a nextLink of the
                                        incremental round in progress
A stream may add its own keys (e.g. the calendar's window); they are carried along unchanged.
Links are absolute, as Graph gives them; one that leaves the configured API origin restarts the pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.base import JSON, ConnectorError, CursorExpired
from connectors.graph_http import MAX_PAGE_SIZE, GraphClient

PREFER = f'odata.maxpagesize={MAX_PAGE_SIZE}, IdType="ImmutableId"'  # ids survive moves between folders


@dataclass(frozen=True)
class DeltaPage:
    """What one delta call gave: present items, removed ids, the next cursor and whether the round ended."""

    items: list[JSON]
    removed: list[str]
    cursor: JSON
    done: bool
    full_resync: bool


def check_cursor(cursor: JSON | None, what: str) -> None:
    """A cursor this module did not write is expired (a full pass starts over), never a crash."""
    if cursor is None:
        return
    if cursor.get("phase") not in ("full", "incremental") or not isinstance(cursor.get("link"), str):
        raise CursorExpired(f"{what} cursor not understood: phase={cursor.get('phase')!r}")


def fetch_delta(
    client: GraphClient, cursor: JSON | None, start: tuple[str, dict[str, str]], what: str, keep: JSON | None = None
) -> DeltaPage:
    """GET the page after `cursor` (None: the round's first request, `start` = (path, params))."""
    check_cursor(cursor, what)
    phase = "full" if cursor is None else str(cursor["phase"])
    if cursor is None:
        answer = client.get(start[0], what, params=start[1], headers={"Prefer": PREFER})
        requested = client.url(start[0])
    else:
        requested = client.url(str(cursor["link"]))
        answer = client.get(requested, what, headers={"Prefer": PREFER})
    value = answer.get("value")
    if not isinstance(value, list):
        raise ConnectorError(f"{what}: the answer has no value list")
    items = [i for i in value if isinstance(i, dict) and isinstance(i.get("id"), str) and "@removed" not in i]
    removed = [str(i["id"]) for i in value if isinstance(i, dict) and "@removed" in i and i.get("id")]
    next_link, delta_link = answer.get("@odata.nextLink"), answer.get("@odata.deltaLink")
    extra: dict[str, Any] = dict(keep or {})
    if isinstance(next_link, str) and next_link:
        if next_link == requested:
            raise ConnectorError(f"{what}: Graph returned the same nextLink again (a paging loop)")
        client.url(next_link)  # refuses a link to another origin
        return DeltaPage(items, removed, {**extra, "phase": phase, "link": next_link}, False, phase == "full")
    if not isinstance(delta_link, str) or not delta_link:
        raise ConnectorError(f"{what}: the answer has neither @odata.nextLink nor @odata.deltaLink")
    client.url(delta_link)
    return DeltaPage(items, removed, {**extra, "phase": "incremental", "link": delta_link}, True, phase == "full")
