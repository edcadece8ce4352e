"""The owners stream: every HubSpot user as a `user` person record, one list call per run (owners are few).

Owners have no search and no change feed: each run lists the live owners (`archived=false`, 500 a call).
The cursor keeps a fingerprint of each live owner as last listed, so a run emits only the owners that are
new or changed, and a Deletion for each owner gone from the live list (HubSpot lists an owner who is
deactivated or removed only under `archived=true`, so leaving the live list is how a deletion shows). An
unchanged portal costs one call and emits nothing. The first listing (cursor None) is a full pass whose
end sweeps what it did not see, so it needs no archived list either.

Cursor: {"v": 2, "phase": "live", "after": T|null, "full": F, "known": {id: fp}, "seen": {id: fp}} while
listing (`known`: the last run's owners; `seen`: this run's so far); {"v": 2, "phase": "idle", "known":
{id: fp}} when caught up (the next call starts a new listing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from connectors.base import JSON, ConnectorError, CursorExpired, Deletion, FetchContext, Page
from connectors.hubspot_http import HubspotApi
from connectors.hubspot_mapping import SOURCE, Mapped, map_owner, record_key

OWNERS_PAGE = 500
CURSOR_VERSION = 2


def fingerprint(owner: Mapping[str, Any]) -> str:
    """A short digest of everything HubSpot said about an owner: any change shows as a new fingerprint."""
    canonical = json.dumps(owner, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def _prints(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise CursorExpired("hubspot owners cursor not understood: no owner fingerprints")
    return {str(k): str(v) for k, v in raw.items()}


def _listing(cursor: JSON | None) -> tuple[str | None, bool, dict[str, str], dict[str, str]]:
    """(after, full, known, seen) of the listing to continue or to start."""
    if cursor is None:
        return None, True, {}, {}
    if cursor.get("v") != CURSOR_VERSION or cursor.get("phase") not in ("live", "idle"):
        raise CursorExpired(f"hubspot owners cursor not understood: {cursor!r}")
    if cursor["phase"] == "idle":
        return None, False, _prints(cursor.get("known")), {}
    after = None if cursor.get("after") is None else str(cursor["after"])
    return after, bool(cursor.get("full")), _prints(cursor.get("known")), _prints(cursor.get("seen"))


def fetch_owners_page(cursor: JSON | None, ctx: FetchContext) -> Page:
    """One owners list call: the new and changed live owners; at the listing's end, the vanished as Deletions."""
    after, full, known, seen = _listing(cursor)
    api = HubspotApi(ctx)
    what = "hubspot owners list"
    reply = api.call(what, api.owners.get_page, limit=OWNERS_PAGE, after=after, archived=False)
    results = reply.body.get("results")
    if not isinstance(results, list):
        raise ConnectorError(f"{what}: the answer has no results list")
    out = Mapped()
    for owner in (r for r in results if isinstance(r, Mapping)):
        owner_id = record_key(owner)
        if owner_id is not None:
            seen[owner_id] = fingerprint(owner)
            if known.get(owner_id) == seen[owner_id]:
                continue  # listed last run exactly as it is now
        map_owner(owner, out)
    token = ((reply.body.get("paging") or {}).get("next") or {}).get("after")
    if token and str(token) == after:
        raise ConnectorError(f"{what}: repeated page token {after!r}: refusing to loop")
    if token:
        nxt: JSON = {
            "v": CURSOR_VERSION,
            "phase": "live",
            "after": str(token),
            "full": full,
            "known": known,
            "seen": seen,
        }
        return Page(out.observations, out.rejections, nxt, False, api.calls, full)
    out.observations.extend(Deletion(SOURCE, f"owner:{i}") for i in sorted(set(known) - set(seen)))
    idle: JSON = {"v": CURSOR_VERSION, "phase": "idle", "known": seen}
    return Page(out.observations, out.rejections, idle, True, api.calls, full)
