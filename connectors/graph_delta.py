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

from connectors.base import JSON, ConnectorError, CursorExpired, Rejection
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
    malformed: list[str]  # what was wrong with each entry that is neither an item nor a removal

    def rejected(self, source: str) -> list[Rejection]:
        """The malformed entries as the source's rejections: recorded with their reason, never dropped silently."""
        return [Rejection(source, "", "no_id", detail) for detail in self.malformed]


def split_entries(value: list[Any], what: str) -> tuple[list[JSON], list[str], list[str]]:
    """A delta answer's entries as (items, removed ids, malformed entries described)."""
    items, removed, malformed = [], [], []
    for n, entry in enumerate(value):
        if not isinstance(entry, dict):
            malformed.append(f"{what}: entry {n} is a {type(entry).__name__}, not an object")
        elif not isinstance(entry.get("id"), str) or not entry["id"]:
            kind = "removed entry" if "@removed" in entry else "item"
            malformed.append(f"{what}: {kind} {n} has no id (keys: {', '.join(sorted(map(str, entry))[:8])})")
        elif "@removed" in entry:
            removed.append(entry["id"])
        else:
            items.append(entry)
    return items, removed, malformed


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
    items, removed, malformed = split_entries(value, what)
    next_link, delta_link = answer.get("@odata.nextLink"), answer.get("@odata.deltaLink")
    extra: dict[str, Any] = dict(keep or {})
    if isinstance(next_link, str) and next_link:
        if next_link == requested:
            raise ConnectorError(f"{what}: Graph returned the same nextLink again (a paging loop)")
        client.url(next_link)  # refuses a link to another origin
        next_cursor = {**extra, "phase": phase, "link": next_link}
        return DeltaPage(items, removed, next_cursor, False, phase == "full", malformed)
    if not isinstance(delta_link, str) or not delta_link:
        raise ConnectorError(f"{what}: the answer has neither @odata.nextLink nor @odata.deltaLink")
    client.url(delta_link)
    caught_up = {**extra, "phase": "incremental", "link": delta_link}
    return DeltaPage(items, removed, caught_up, True, phase == "full", malformed)
