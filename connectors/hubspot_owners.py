"""The owners stream: every HubSpot user as a `user` person record, re-listed each run (owners are few).

Owners have no search and no change feed, so each run lists the live owners, then the archived ones
as Deletions. Only the first listing (cursor None) is a full pass whose end sweeps unseen records.

Cursor: {"v": 1, "phase": "live"|"archived", "after": T|null, "full": F} while listing; {"v": 1,
"phase": "idle"} when caught up (the next call starts a new listing).
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.base import JSON, ConnectorError, CursorExpired, Deletion, FetchContext, Page
from connectors.hubspot_http import HubspotApi
from connectors.hubspot_mapping import SOURCE, Mapped, map_owner, record_key

OWNERS_PAGE = 500
CURSOR_VERSION = 1


def fetch_owners_page(cursor: JSON | None, ctx: FetchContext) -> Page:
    """One owners list call: live owners first, then archived ones as Deletions."""
    if cursor is not None and (
        cursor.get("v") != CURSOR_VERSION or cursor.get("phase") not in ("live", "archived", "idle")
    ):
        raise CursorExpired(f"hubspot owners cursor not understood: {cursor!r}")
    full = cursor is None or bool(cursor.get("full"))
    if cursor is None or cursor["phase"] == "idle":
        cursor = {"v": CURSOR_VERSION, "phase": "live", "after": None, "full": cursor is None}
    archived = cursor["phase"] == "archived"
    after = cursor.get("after")
    api = HubspotApi(ctx)
    what = f"hubspot owners list (archived={archived})"
    reply = api.call(what, api.owners.get_page, limit=OWNERS_PAGE, after=after, archived=archived)
    results = reply.body.get("results")
    if not isinstance(results, list):
        raise ConnectorError(f"{what}: the answer has no results list")
    out = Mapped()
    for owner in (r for r in results if isinstance(r, Mapping)):
        if archived:
            owner_id = record_key(owner)
            if owner_id is not None:
                out.observations.append(Deletion(SOURCE, f"owner:{owner_id}"))
        else:
            map_owner(owner, out)
    token = ((reply.body.get("paging") or {}).get("next") or {}).get("after")
    if token and str(token) == after:
        raise ConnectorError(f"{what}: repeated page token {after!r}: refusing to loop")
    if token:
        nxt: JSON = {"v": CURSOR_VERSION, "phase": cursor["phase"], "after": str(token), "full": full}
        return Page(out.observations, out.rejections, nxt, False, api.calls, full)
    if not archived:
        nxt = {"v": CURSOR_VERSION, "phase": "archived", "after": None, "full": full}
        return Page(out.observations, out.rejections, nxt, False, api.calls, full)
    return Page(out.observations, out.rejections, {"v": CURSOR_VERSION, "phase": "idle"}, True, api.calls, full)
