"""The companies stream: a renamed company's new name reaches contacts that were not themselves modified.

No record of its own: a contact's company name comes with the contact (contacts stream). A full pass
is one search for the newest company (descending, limit 1): its time is where watching starts. Each
incremental run walks the companies modified since (hubspot_scan: 200 a search, re-anchored below the
10,000 cap), reads their contacts (v4 associations, 1,000 companies a call) and those contacts (batch
reads of 100), and emits them exactly as the contacts stream does (`map_contacts`), with the searched
company's name. A contact's own `company` text still wins over its company's name, as it does there.
A domain change re-sends the same contacts (the network derives company domains from email addresses).

Archived companies: search never returns them, so nothing happens here (no contact is deleted);
the contacts lose the name when next read, as the name read asks for live companies only.

Index lag: a run remembers `settled`, its first search's server time less a minute (what every search
of the run could see). The next run goes on where the walk stopped when `settled` is past it, so an
unchanged run costs one search; otherwise it re-reads from `settled`, once, to catch a late-indexed change.

A page is up to ceil(page_size / 200) searches (at most 1,000 companies: one association call), and
follows a company's association pages while fewer than page_size contacts are in; the rest wait in
the cursor as `pending` association inputs, drained by the next pages before the walk goes on.

Cursor: {"v": 1, "phase": "scan"|"drain"|"idle", "scan": {...Scan...}, "settled": MS|null,
"pending": [{"id": C, "after": T}, ...]}; "drain": the walk has ended, only `pending` is left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from connectors.base import JSON, CursorExpired, FetchContext, Page, owned_by
from connectors.hubspot_crm import ASSOCIATION_BATCH, CONTACT_PROPERTIES, OVERLAP_MS, map_contacts, read_associations
from connectors.hubspot_http import HubspotApi, Reply, read_by_ids, results
from connectors.hubspot_mapping import props, text
from connectors.hubspot_scan import SEARCH_LIMIT, Record, Scan, epoch_ms, record_id, step

CURSOR_VERSION = 1
MODIFIED = "hs_lastmodifieddate"
WHAT = "hubspot companies search"
PHASES = ("scan", "drain", "idle")


@dataclass(frozen=True)
class CompaniesCursor:
    """The stream's position, as stored between pages (see the module docstring)."""

    phase: str = "scan"
    scan: Scan = field(default_factory=Scan)
    settled: int | None = None  # None until the run's first search answers
    pending: tuple[tuple[str, str | None], ...] = ()  # (company id, its next association page token)

    def to_json(self) -> JSON:
        out: JSON = {"v": CURSOR_VERSION, "phase": self.phase, "scan": self.scan.to_json(), "settled": self.settled}
        out["pending"] = [{"id": i, "after": a} for i, a in self.pending]
        return out

    def inputs(self) -> list[JSON]:
        """The pending association reads, as the v4 batch read takes them."""
        return [{"id": i} | ({"after": a} if a else {}) for i, a in self.pending]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CompaniesCursor:
        if raw.get("v") != CURSOR_VERSION or raw.get("phase") not in PHASES:
            raise CursorExpired(f"hubspot companies cursor not understood: v={raw.get('v')!r}")
        try:
            settled = raw["settled"]
            return cls(
                phase=str(raw["phase"]),
                scan=Scan.from_json(raw["scan"]),
                settled=None if settled is None else int(settled),
                pending=_pending(raw["pending"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CursorExpired(f"hubspot companies cursor not understood: {exc!r}") from None

    def next_run(self) -> CompaniesCursor:
        """A new run: on from the walk's end when the last run saw all before it, else from `settled`."""
        if self.settled is not None and self.settled >= self.scan.anchor:
            return CompaniesCursor("scan", self.scan)
        since = self.scan.anchor - OVERLAP_MS if self.settled is None else self.settled
        return CompaniesCursor("scan", Scan(anchor=max(0, since), hwm=self.scan.hwm))


def _pending(inputs: Any) -> tuple[tuple[str, str | None], ...]:
    """Association inputs left for later pages, as the cursor keeps them."""
    return tuple((str(i["id"]), str(i["after"]) if i.get("after") else None) for i in inputs)


def _settled(reply: Reply, ctx: FetchContext) -> int:
    """What every later search can see: the server's clock (ours without a Date header) less a minute."""
    now = ctx.now if ctx.now.tzinfo is not None else ctx.now.replace(tzinfo=UTC)
    return (reply.server_ms() or int(now.timestamp() * 1000)) - OVERLAP_MS


def _opening_page(api: HubspotApi, ctx: FetchContext) -> Page:
    """The full pass: one search for the newest company, whose time the first run starts after."""
    newest = [{"propertyName": MODIFIED, "direction": "DESCENDING"}]
    reply = api.call(WHAT, api.search.do_search, "companies", {"sorts": newest, "properties": [MODIFIED], "limit": 1})
    times = [t for r in results(reply, WHAT) if (t := epoch_ms(props(r).get(MODIFIED))) is not None]
    scan = Scan(anchor=times[0], strict=True, hwm=times[0]) if times else Scan()
    idle = CompaniesCursor("idle", scan, _settled(reply, ctx))
    return Page([], [], idle.to_json(), True, api.calls)


def _walk(api: HubspotApi, state: CompaniesCursor, ctx: FetchContext) -> tuple[list[Record], CompaniesCursor]:
    """Up to ceil(page_size / 200) searches of the walk (one association call's worth of companies)."""
    scan, settled = state.scan, state.settled
    companies: list[Record] = []

    def search(body: JSON) -> list[Record]:
        nonlocal settled
        reply = api.call(WHAT, api.search.do_search, "companies", body)
        settled = _settled(reply, ctx) if settled is None else settled
        return results(reply, WHAT)

    for _ in range(min(-(-ctx.page_size // SEARCH_LIMIT), ASSOCIATION_BATCH // SEARCH_LIMIT)):
        outcome = step(scan, search, MODIFIED, ("name",))
        companies.extend(outcome.emit)
        scan = outcome.scan
        if outcome.ended:
            return companies, CompaniesCursor("drain", scan, settled)
    return companies, CompaniesCursor("scan", scan, settled)


def _page(api: HubspotApi, state: CompaniesCursor, ctx: FetchContext) -> Page:
    """Pending association pages, else the next companies of the walk; their contacts, mapped."""
    names: dict[str, str | None] = {}
    inputs, after = state.inputs(), state
    if not inputs:
        companies, after = _walk(api, state, ctx)
        names = {record_id(c): text(props(c).get("name")) for c in companies if record_id(c)}  # last form wins
        inputs = [{"id": i} for i in names]
    found, left = read_associations(api, "companies", inputs, ctx.page_size) if inputs else ({}, [])
    contact_ids = list(dict.fromkeys(i for ids in found.values() for i in ids))
    contacts = {record_id(c): c for c in read_by_ids(api, "contacts", contact_ids, CONTACT_PROPERTIES)}
    mapped = map_contacts(api, list(contacts.values()), names)
    pending = _pending(left)
    phase = "idle" if after.phase == "drain" and not pending else after.phase
    cursor = CompaniesCursor(phase, after.scan, after.settled, pending)
    observations = owned_by("contacts", mapped.observations)
    return Page(observations, mapped.rejections, cursor.to_json(), phase == "idle", api.calls)


def fetch_companies_page(cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` of the companies stream (None: the one-search full pass)."""
    api = HubspotApi(ctx)
    if cursor is None:
        return _opening_page(api, ctx)
    state = CompaniesCursor.from_json(cursor)
    return _page(api, state.next_run() if state.phase == "idle" else state, ctx)
