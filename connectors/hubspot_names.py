"""Company names for the contacts stream, each company read at most once per pass (or incremental run).

A contact's company is its own `company` text, else the name of its primary company (`associatedcompanyid`).
Search returns no property of an associated record, so those names are read apart from the contacts,
and a pass keeps the names it read in its cursor (`CompanyNames`, at most NAMES_MAX, dropped when the
walk ends) so a later page does not read them again:

* a directory: the first page needing names reads every live company when that is cheap - one search
  (200 by id ascending, `hs_object_id > last`: no offsets, nowhere near the 10,000 cap) tells how many
  there are, and the rest are read when the portal has at most NAMES_MAX companies and they take no more
  searches than the pass has pages left (each of which could otherwise need a batch read of its own);
* otherwise batch reads (100 ids a call) of the ids a page names that are not kept yet; an id a batch
  read does not find (archived, gone) is kept as None, so it is not asked again either.

A name kept from an earlier page may have changed since. So when a walk that kept names ends, one
search lists the companies modified since the first was read (less a minute of index lag); contacts
of a kept company whose name changed are read again and re-sent (hubspot_crm), as a page reading its
names afresh would have sent them (up to CHECK_SEARCHES searches: 5,000 companies changed during the
pass). An archived company keeps its name until the next pass, as contacts read before it was archived do.

Cursor part (under "companies" in a contacts cursor while walking):
  {"names": {"<company id>": "<name>" | null, ...}, "since": MS | null, "tried": bool}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.base import JSON, CursorExpired
from connectors.hubspot_http import BATCH_READ, HubspotApi, Record, read_by_ids, results
from connectors.hubspot_mapping import props, text
from connectors.hubspot_scan import ID_PROPERTY, SEARCH_LIMIT, Scan, is_number, record_id, step

NAMES_MAX = 1000  # names a cursor keeps (about 40 kB at most); also the largest portal read as a directory
INDEX_LAG_MS = 60_000  # search indexes lag writes by seconds (hubspot_crm.OVERLAP_MS)
MODIFIED = "hs_lastmodifieddate"
CHECK_SEARCHES = 25  # renamed-company searches at a walk's end: 5,000 companies changed during one pass
WHAT = "hubspot companies search"


@dataclass(frozen=True)
class CompanyNames:
    """The company names a pass has read so far (see the module docstring)."""

    names: Mapping[str, str | None] = field(default_factory=dict)
    since: int | None = None  # epoch ms, a minute before the first kept name was read; None: none kept
    tried: bool = False  # the directory was considered in this pass

    def to_json(self) -> JSON:
        return {"names": dict(self.names), "since": self.since, "tried": self.tried}

    @classmethod
    def from_json(cls, raw: Any) -> CompanyNames:
        if raw is None:
            return cls()
        try:
            names = raw["names"]
            if not isinstance(names, Mapping):
                raise TypeError("names is not an object")
            since = raw["since"]
            return cls(
                names={str(k): None if v is None else str(v) for k, v in names.items()},
                since=None if since is None else int(since),
                tried=bool(raw["tried"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CursorExpired(f"hubspot company names not understood: {exc!r}") from None

    @property
    def empty(self) -> bool:
        return not self.names and not self.tried

    def kept(self, found: Mapping[str, str | None], since: int) -> CompanyNames:
        """With `found` added, up to NAMES_MAX names in all (known ids take their new value)."""
        names = dict(self.names)
        for cid, name in found.items():
            if cid in names or len(names) < NAMES_MAX:
                names[cid] = name
        first = self.since if self.since is not None or not names else since
        return CompanyNames(names, first, self.tried)


def named_companies(contacts: Sequence[Record]) -> list[str]:
    """The primary companies of the contacts without `company` text of their own, in first-seen order."""
    found: dict[str, None] = {}
    for contact in contacts:
        p = props(contact)
        cid = text(p.get("associatedcompanyid"))
        if text(p.get("company")) is None and cid is not None and is_number(cid):
            found[cid] = None
    return list(found)


def _name(company: Record) -> str | None:
    return text(props(company).get("name"))


def _directory_search(api: HubspotApi, after: str) -> tuple[list[Record], int]:
    """Up to 200 live companies with ids above `after`, ascending by id, and how many there are in all."""
    body: JSON = {
        "filterGroups": [{"filters": [{"propertyName": ID_PROPERTY, "operator": "GT", "value": after}]}],
        "sorts": [{"propertyName": ID_PROPERTY, "direction": "ASCENDING"}],
        "properties": ["name"],
        "limit": SEARCH_LIMIT,
    }
    reply = api.call(WHAT, api.search.do_search, "companies", body)
    total = reply.body.get("total")
    return results(reply, WHAT), int(total) if isinstance(total, int) else NAMES_MAX + 1


def _directory(api: HubspotApi, pages_left: int) -> dict[str, str | None]:
    """Every live company's name when the portal is small enough to pay (see the module docstring), else the
    first 200 the one search that tells returned."""
    found, total = _directory_search(api, "0")
    names = {record_id(c): _name(c) for c in found if record_id(c)}
    searches = -(-total // SEARCH_LIMIT)
    if total > NAMES_MAX or searches > pages_left:
        return names
    for _ in range(searches + 1):  # one more than it takes, for companies created meanwhile
        if len(found) < SEARCH_LIMIT or len(names) >= total:
            break
        found, _ = _directory_search(api, record_id(found[-1]))
        names.update((record_id(c), _name(c)) for c in found if record_id(c))
    return names


def resolve(
    api: HubspotApi, contacts: Sequence[Record], kept: CompanyNames, pages_left: int, now_ms: int
) -> tuple[dict[str, str], CompanyNames]:
    """The names of these contacts' companies (reading those not kept), and the names to keep after the page.

    `pages_left`: the pages the walk still has, this one included; `now_ms`: the server's clock at the
    page's first search (kept names are checked for changes from a minute before it)."""
    wanted = [cid for cid in named_companies(contacts) if cid not in kept.names]
    found: dict[str, str | None] = {}
    if wanted and not kept.tried and pages_left > 1:
        found = _directory(api, pages_left)
        kept = CompanyNames(kept.names, kept.since, tried=True)
    rest = [cid for cid in wanted if cid not in found]
    for start in range(0, len(rest), BATCH_READ):
        chunk = rest[start : start + BATCH_READ]
        found.update(dict.fromkeys(chunk))  # not found: archived or gone
        found.update((record_id(c), _name(c)) for c in read_by_ids(api, "companies", chunk, ("name",)))
    after = kept.kept(found, now_ms - INDEX_LAG_MS) if found else kept
    names = {cid: name for cid, name in (*after.names.items(), *found.items()) if name is not None}
    return names, after


def renamed_since(api: HubspotApi, kept: CompanyNames) -> dict[str, str | None]:
    """Kept companies whose name is no longer the kept one: a walk over the companies modified since."""
    if kept.since is None or not kept.names:
        return {}
    scan, changed = Scan(anchor=kept.since), dict[str, str | None]()

    def search(body: JSON) -> list[Record]:
        return results(api.call(WHAT, api.search.do_search, "companies", body), WHAT)

    for _ in range(CHECK_SEARCHES):
        outcome = step(scan, search, MODIFIED, ("name",))
        for company in outcome.emit:
            cid = record_id(company)
            if cid in kept.names and kept.names[cid] != _name(company):
                changed[cid] = _name(company)
        scan = outcome.scan
        if outcome.ended:
            break
    return changed
