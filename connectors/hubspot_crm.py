"""The contacts and engagement streams: one page of a last-modified walk (or of the archived list) per call.

A run walks the type with the search API (see hubspot_scan), then - on incremental runs - lists the
archived records (`archived=true`, the only place deletions show: search never returns an archived
record) newer than the last run's start, as Deletions. A full pass needs no archived walk: its end is
where the next run's window starts.

An incremental run opens with a probe (_probe_page): one search for the newest records, newest first,
whose `total` counts the live records. When its 200 reach back past the run's anchor they are every change
since the last run, and the walk is skipped. When nothing changed and the live count is the last count,
nothing was archived either - a record created or restored meanwhile would show as a change, and HubSpot
counts and finds records from the same index - so the run ends there: an unchanged portal costs one call.
Otherwise the archived list follows (from the last list's start: a skipped list moves no window, so an
archive the count shows a run late is still read), and at least hourly (ARCHIVED_RECHECK_MS) whatever
the count says. 200 changes or more hand over to the walk.

Why search for the full pass too: 200 records a call against the list API's 100; engagements need
their contacts from v4 association batch reads (up to 1,000 ids a call), so an engagement page is as many
searches as fill whole association reads - 5 searches of 200, then one read of their 1,000 ids (page sizes
above 1,000 take 10, 15, ...): 60 calls per 10,000 engagements against 100 for listing with inline
associations. A contacts page is ceil(page_size / 200) searches (about 50 per 10,000 against 100), plus
company names each read at most once per pass (hubspot_names). The page size does not change the walk:
every search re-anchors at offset 0 (hubspot_scan), however many a page makes. One code path serves both
passes, and a record modified during the pass moves later in the walk instead of being skipped.

`results`, `read_associations`, `read_by_ids` and `map_contacts` also serve the companies stream
(hubspot_companies), which re-sends contacts exactly as this module maps them.

Each run re-reads the minute before the latest change seen (OVERLAP_MS: search indexes lag writes) and
the archived list from five minutes before the last run's start (CLOCK_SKEW_MS). What those margins bring
back unchanged - the same id with the same modification time and content, or the same archive time - was
emitted by an earlier page and is left out (connectors.lookback), so a probe that brings back only those
maps nothing (engagements read no associations).

Cursor (JSON, stored verbatim; every phase also carries "tail" and "gone", {id: [MS, digest]} of what the
margins will bring back, see connectors.lookback, and "live_total", the last live count):
  {"v": 1, "phase": "scan", "full": F, "scan": {...Scan...}, "archived_since": MS}   walking
    (contacts add "companies": {...CompanyNames...} once a page has read company names)
  {"v": 1, "phase": "archived", "full": false, "scan": {...}, "archived_since": MS,
   "archived_after": T, "archived_started": MS}                                     listing archived
  {"v": 1, "phase": "idle", "full": false, "scan": {...}, "archived_since": MS}      caught up
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC
from itertools import pairwise
from typing import Any

from connectors.base import JSON, ConnectorError, CursorExpired, Deletion, FetchContext, Page
from connectors.hubspot_http import HubspotApi, read_by_ids, results
from connectors.hubspot_mapping import (
    ENGAGEMENTS,
    SOURCE,
    Mapped,
    engagement_id,
    map_contact,
    map_engagement,
    props,
    text,
)
from connectors.hubspot_names import CompanyNames, renamed_since, resolve
from connectors.hubspot_scan import SEARCH_LIMIT, Record, Scan, epoch_ms, is_number, modified_ms, record_id, step
from connectors.lookback import Tail, digest

CURSOR_VERSION = 1
OVERLAP_MS = 60_000  # search indexes lag writes by seconds: each run re-reads the minute before its start
CLOCK_SKEW_MS = 300_000  # the archived window opens this long before the server's clock at a run's start
# the archived list is read at least this often even when the live count says nothing was archived (a bound
# on how late a deletion shows should a restore ever fail to stamp its record modified)
ARCHIVED_RECHECK_MS = 3_600_000
ARCHIVED_PAGE = 100
ASSOCIATION_BATCH = 1000
MAX_FOLLOW_UPS = 50  # association calls beyond the first ones, per page (a contact list over 500 is rare)


@dataclass(frozen=True)
class CrmStream:
    """One object type: what to ask for and which property dates its last change."""

    object_type: str
    modified: str
    properties: tuple[str, ...]


CONTACT_PROPERTIES = (
    "email", "hs_additional_emails", "phone", "mobilephone", "firstname", "lastname", "company",
    "associatedcompanyid", "hs_merged_object_ids",
)  # fmt: skip
STREAMS: dict[str, CrmStream] = {
    "contacts": CrmStream("contacts", "lastmodifieddate", CONTACT_PROPERTIES),
    "calls": CrmStream("calls", "hs_lastmodifieddate", ("hs_timestamp", "hubspot_owner_id", "hs_call_title")),
    "meetings": CrmStream(
        "meetings",
        "hs_lastmodifieddate",
        ("hs_timestamp", "hubspot_owner_id", "hs_meeting_title", "hs_meeting_start_time", "hs_meeting_outcome"),
    ),
    "emails": CrmStream(
        "emails",
        "hs_lastmodifieddate",
        ("hs_timestamp", "hubspot_owner_id", "hs_email_subject", "hs_email_message_id", "hs_email_direction"),
    ),
}


@dataclass(frozen=True)
class CrmCursor:
    """The stream's position, as stored between pages (see the module docstring)."""

    phase: str = "scan"
    full: bool = True
    scan: Scan = field(default_factory=Scan)
    archived_since: int | None = None  # None until the pass's first answer tells the server's time
    archived_after: str | None = None
    archived_started: int | None = None
    companies: CompanyNames = field(default_factory=CompanyNames)  # contacts, while walking
    live_total: int | None = None  # live records at the last count (a full pass's or a probe's first search)
    tail: Tail = field(default_factory=Tail)  # records emitted within OVERLAP_MS of the walk's hwm
    gone: Tail = field(default_factory=Tail)  # Deletions emitted, by archivedAt, within the archived window

    def to_json(self) -> JSON:
        out: JSON = {"v": CURSOR_VERSION, "phase": self.phase, "full": self.full, "scan": self.scan.to_json()}
        out["archived_since"] = self.archived_since
        out["tail"], out["gone"], out["live_total"] = self.tail.to_json(), self.gone.to_json(), self.live_total
        if self.phase == "scan" and not self.companies.empty:
            out["companies"] = self.companies.to_json()
        if self.phase == "archived":
            out["archived_after"] = self.archived_after
            out["archived_started"] = self.archived_started
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> CrmCursor:
        if raw is None:
            return cls()
        if raw.get("v") != CURSOR_VERSION or raw.get("phase") not in ("scan", "archived", "idle"):
            raise CursorExpired(f"hubspot cursor not understood: v={raw.get('v')!r} phase={raw.get('phase')!r}")
        try:
            since = raw.get("archived_since")
            started = raw.get("archived_started")
            total = raw.get("live_total")
            return cls(
                phase=str(raw["phase"]),
                full=bool(raw["full"]),
                scan=Scan.from_json(raw["scan"]),
                archived_since=None if since is None else int(since),
                archived_after=None if raw.get("archived_after") is None else str(raw["archived_after"]),
                archived_started=None if started is None else int(started),
                companies=CompanyNames.from_json(raw.get("companies")),
                live_total=None if total is None else int(total),
                tail=Tail.from_json(raw.get("tail")),
                gone=Tail.from_json(raw.get("gone")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CursorExpired(f"hubspot cursor not understood: {exc!r}") from None

    def next_run(self) -> CrmCursor:
        """A new incremental run: the walk resumes a little before the latest change seen."""
        start = Scan(anchor=max(0, self.scan.hwm - OVERLAP_MS), hwm=self.scan.hwm)
        return CrmCursor(
            "probe", False, start, self.archived_since, live_total=self.live_total, tail=self.tail, gone=self.gone
        )


def read_associations(
    api: HubspotApi, object_type: str, inputs: Sequence[JSON], enough: int | None = None
) -> tuple[dict[str, list[str]], list[JSON]]:
    """Contact ids per record (v4 batch reads, 1,000 inputs a call) and the inputs left once `enough` are in."""
    found: dict[str, list[str]] = {str(i["id"]): [] for i in inputs}
    pending = list(inputs)
    asked = {(str(i["id"]), str(i["after"])) for i in inputs if i.get("after")}
    what = f"hubspot {object_type}->contacts associations"
    count, calls = 0, len(inputs) // ASSOCIATION_BATCH + 1 + MAX_FOLLOW_UPS
    while pending and (enough is None or count < enough):
        if calls == 0:
            raise ConnectorError(f"{what}: too many association pages in one page")
        calls -= 1
        chunk, pending = pending[:ASSOCIATION_BATCH], pending[ASSOCIATION_BATCH:]
        reply = api.call(what, api.associations.get_page, object_type, "contacts", {"inputs": chunk})
        for result in results(reply, what):
            source = str((result.get("from") or {}).get("id", ""))
            for target in result.get("to") or ():
                if isinstance(target, Mapping) and source in found:
                    found[source].append(str(target.get("toObjectId", "")))
                    count += 1
            after = ((result.get("paging") or {}).get("next") or {}).get("after")
            if after:
                if (source, str(after)) in asked:
                    raise ConnectorError(f"{what}: repeated page token for {source}")
                asked.add((source, str(after)))
                pending.append({"id": source, "after": str(after)})
    return found, pending


def _company_names(api: HubspotApi, contacts: Sequence[Record], known: Mapping[str, str | None]) -> dict[str, str]:
    """Company names for contacts without `company` text: `known` (just searched) ones are not read again."""
    wanted = sorted(
        {
            cid
            for c in contacts
            if text(props(c).get("company")) is None
            and (cid := text(props(c).get("associatedcompanyid"))) is not None
            and is_number(cid)
        }
        - set(known)
    )
    names = {cid: name for cid, name in known.items() if name is not None}
    for company in read_by_ids(api, "companies", wanted, ("name",)):
        name = text(props(company).get("name"))
        if name is not None:
            names[record_id(company)] = name
    return names


def map_contacts(api: HubspotApi, contacts: Sequence[Record], known: Mapping[str, str | None]) -> Mapped:
    """Contacts as the contacts stream emits them, so any stream re-sending one writes the same record."""
    out = Mapped()
    names = _company_names(api, contacts, known)
    for contact in contacts:
        map_contact(contact, names, out)
    return out


@dataclass
class Walked:
    """What a page's searches found, and what the page needs to map them."""

    records: list[Record]
    ended: bool
    pages_left: int  # the walk's pages still to come, this one included (from the first search's total)
    server_ms: int  # the server's clock at the first search


def _resend_renamed(api: HubspotApi, renamed: Mapping[str, str | None], skip: set[str], out: Mapped) -> None:
    """Contacts named after a company renamed since the pass kept its name, mapped with the new name
    (those in `skip`, the page's own, are mapped with it already)."""
    found, _ = read_associations(api, "companies", [{"id": i} for i in renamed])
    ids = [i for i in dict.fromkeys(c for cs in found.values() for c in cs) if i not in skip]
    names = {cid: name for cid, name in renamed.items() if name is not None}
    for contact in read_by_ids(api, "contacts", ids, CONTACT_PROPERTIES):
        p = props(contact)
        if text(p.get("company")) is None and text(p.get("associatedcompanyid")) in renamed:
            map_contact(contact, names, out)


def _map_contacts_page(api: HubspotApi, walked: Walked, state: CrmCursor) -> tuple[Mapped, CompanyNames]:
    """The page's contacts with their company names (hubspot_names), and the names to keep after it."""
    kept, renamed = state.companies, {}
    if walked.ended and kept.since is not None:  # names kept from earlier pages: any renamed since?
        renamed = renamed_since(api, kept)
        kept = CompanyNames({**kept.names, **renamed}, kept.since, kept.tried)
    names, kept = resolve(api, walked.records, kept, walked.pages_left, walked.server_ms)
    out = Mapped()
    for contact in walked.records:
        map_contact(contact, names, out)
    if renamed:
        _resend_renamed(api, renamed, {record_id(c) for c in walked.records}, out)
    return out, kept


def _map_engagements(api: HubspotApi, stream: str, records: list[Record]) -> Mapped:
    out = Mapped()
    spec = ENGAGEMENTS[stream]
    ids = list(dict.fromkeys(record_id(r) for r in records if record_id(r)))
    contacts = read_associations(api, spec.object_type, [{"id": i} for i in ids])[0] if ids else {}
    for record in records:
        map_engagement(spec, record, contacts.get(record_id(record), ()), out)
    return out


def searches_per_page(stream: str, page_size: int) -> int:
    """ceil(page_size / 200) searches; engagements round up to whole association reads (5 searches each)."""
    searches = max(1, -(-page_size // SEARCH_LIMIT))
    if stream in ENGAGEMENTS:
        per_read = ASSOCIATION_BATCH // SEARCH_LIMIT
        searches = -(-searches // per_read) * per_read
    return searches


def _walk(
    api: HubspotApi, stream: CrmStream, name: str, state: CrmCursor, ctx: FetchContext
) -> tuple[Walked, CrmCursor]:
    """A page's searches of the walk (searches_per_page); the cursor after them."""
    records: list[Record] = []
    scan, ended = state.scan, False
    since, first_ms, remaining, live_total = state.archived_since, 0, 0, state.live_total
    what = f"hubspot {stream.object_type} search"
    searches = searches_per_page(name, ctx.page_size)

    def search(body: JSON) -> list[Record]:
        nonlocal since, first_ms, remaining, live_total
        reply = api.call(what, api.search.do_search, stream.object_type, body)
        if not first_ms:
            now = ctx.now if ctx.now.tzinfo is not None else ctx.now.replace(tzinfo=UTC)
            first_ms = reply.server_ms() or int(now.timestamp() * 1000)
            total = reply.body.get("total")
            remaining = total if isinstance(total, int) else 0
            if state.full and state.live_total is None and isinstance(total, int):  # a full pass's first: all
                live_total = total
        if since is None:
            since = max(0, (reply.server_ms() or 0) - CLOCK_SKEW_MS)
        return results(reply, what)

    for _ in range(searches):
        outcome = step(scan, search, stream.modified, stream.properties)
        records.extend(outcome.emit)
        scan, ended = outcome.scan, outcome.ended
        if ended:
            break
    latest = {record_id(r): r for r in records}  # a record modified mid-page appears twice: keep its last form
    versions = [(i, modified_ms(r, stream.modified), digest(r)) for i, r in latest.items()]
    fresh = [latest[v[0]] for v in versions if not state.tail.emitted(*v)]  # the lookback's re-reads out
    tail = state.tail.add(versions, scan.hwm - OVERLAP_MS)
    pages_left = 1 if ended else max(1, -(-remaining // (searches * SEARCH_LIMIT)))
    after = replace(state, scan=scan, archived_since=since, tail=tail, live_total=live_total)
    return Walked(fresh, ended, pages_left, first_ms), after


def _mapped(api: HubspotApi, name: str, walked: Walked, state: CrmCursor) -> tuple[Mapped, CompanyNames]:
    """A page's records as the stream emits them, and the company names to keep (contacts)."""
    if name == "contacts":
        return _map_contacts_page(api, walked, state)
    return _map_engagements(api, name, walked.records), state.companies


def _probe_page(api: HubspotApi, stream: CrmStream, name: str, state: CrmCursor, ctx: FetchContext) -> Page:
    """An incremental run's first call: the newest records, newest first, and how many live records there are.

    When the answer reaches past the run's anchor it holds every change since the last run: those are the
    page, and the walk is not needed. With no change at all and the same live count as last time, nothing
    was archived either (a creation or a restore would have shown as a change), so the run ends here; else
    the archived list follows. An answer that does not reach the anchor (200 changes or more) hands over to
    the walk from the anchor."""
    what = f"hubspot {stream.object_type} search"
    body: JSON = {
        "sorts": [{"propertyName": stream.modified, "direction": "DESCENDING"}],
        "properties": list(dict.fromkeys([*stream.properties, stream.modified])),
        "limit": SEARCH_LIMIT,
    }
    reply = api.call(what, api.search.do_search, stream.object_type, body)
    found = results(reply, what)
    stamps = [modified_ms(r, stream.modified) for r in found]
    if any(b > a for a, b in pairwise(stamps)):
        raise ConnectorError(f"{what}: results outside the requested order")
    total = reply.body.get("total")
    live_total = total if isinstance(total, int) else None
    anchor = state.scan.anchor
    if len(found) >= SEARCH_LIMIT and stamps[-1] >= anchor:  # more changes than one answer: walk them
        return Page([], [], replace(state, phase="scan", live_total=live_total).to_json(), False, api.calls, False)
    changed = {record_id(r): (r, t) for r, t in zip(found, stamps, strict=True) if t >= anchor}
    hwm = max([state.scan.hwm, *(t for _, t in changed.values())])
    versions = [(i, t, digest(r)) for i, (r, t) in changed.items()]
    fresh = [changed[v[0]][0] for v in versions if not state.tail.emitted(*v)]
    tail = state.tail.add(versions, hwm - OVERLAP_MS)
    now = ctx.now if ctx.now.tzinfo is not None else ctx.now.replace(tzinfo=UTC)
    server_ms = reply.server_ms() or int(now.timestamp() * 1000)
    mapped, _ = _mapped(api, name, Walked(fresh, True, 1, server_ms), replace(state, companies=CompanyNames()))
    after = replace(state, scan=replace(state.scan, hwm=hwm), tail=tail, live_total=live_total)
    listed_lately = server_ms - (state.archived_since or 0) < ARCHIVED_RECHECK_MS
    if not fresh and live_total is not None and live_total == state.live_total and listed_lately:
        return Page(mapped.observations, mapped.rejections, replace(after, phase="idle").to_json(), True, api.calls)
    cursor = replace(after, phase="archived", archived_after=None, archived_started=None)
    return Page(mapped.observations, mapped.rejections, cursor.to_json(), False, api.calls, False)


def _scan_page(api: HubspotApi, stream: CrmStream, name: str, state: CrmCursor, ctx: FetchContext) -> Page:
    """A page of the walk, mapped; the walk's end ends a full pass (else the archived list follows)."""
    walked, after = _walk(api, stream, name, state, ctx)
    mapped, companies = _mapped(api, name, walked, state)
    after = replace(after, companies=companies)
    if not walked.ended:
        cursor = after
    elif state.full:
        cursor = replace(after, phase="idle", full=False, companies=CompanyNames())
    else:
        cursor = replace(after, phase="archived", archived_after=None, archived_started=None, companies=CompanyNames())
    done = cursor.phase == "idle"
    return Page(mapped.observations, mapped.rejections, cursor.to_json(), done, api.calls, state.full)


def _archived_page(api: HubspotApi, stream: CrmStream, name: str, state: CrmCursor, ctx: FetchContext) -> Page:
    """The archived list since the last run's start, as Deletions; its end ends the run."""
    out = Mapped()
    after, started = state.archived_after, state.archived_started
    since = state.archived_since or 0
    archived: dict[str, int | None] = {}
    what = f"hubspot {stream.object_type} archived list"
    for _ in range(max(1, ctx.page_size // ARCHIVED_PAGE)):
        reply = api.call(
            what, api.objects.get_page, stream.object_type, limit=ARCHIVED_PAGE, after=after, archived=True,
            properties=[stream.modified],
        )  # fmt: skip
        if started is None:
            started = reply.server_ms() or since + CLOCK_SKEW_MS
        for record in results(reply, what):
            archived_at = epoch_ms(record.get("archivedAt"))
            rid = record_id(record)
            if rid and (archived_at is None or archived_at >= since):
                archived[rid] = archived_at
                if not state.gone.emitted(rid, archived_at, ""):  # not the Deletion the last run's window sent
                    out.observations.append(
                        Deletion(SOURCE, rid if name == "contacts" else engagement_id(ENGAGEMENTS[name], rid))
                    )
        token = ((reply.body.get("paging") or {}).get("next") or {}).get("after")
        if not token:
            until = started - CLOCK_SKEW_MS
            gone, tail = state.gone.add(((i, t, "") for i, t in archived.items()), until), state.tail.without(archived)
            idle = replace(state, phase="idle", archived_since=until, gone=gone, tail=tail)
            return Page(out.observations, out.rejections, idle.to_json(), True, api.calls, False)
        if str(token) == after:
            raise ConnectorError(f"{what}: repeated page token {after!r}: refusing to loop")
        after = str(token)
    gone, tail = state.gone.add(((i, t, "") for i, t in archived.items()), since), state.tail.without(archived)
    cursor = replace(state, archived_after=after, archived_started=started, gone=gone, tail=tail)
    return Page(out.observations, out.rejections, cursor.to_json(), False, api.calls, False)


def fetch_crm_page(name: str, cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` of a contacts or engagement stream."""
    state = CrmCursor.from_json(cursor)
    if state.phase == "idle":
        state = state.next_run()
    api = HubspotApi(ctx)
    stream = STREAMS[name]
    if state.phase == "probe":
        return _probe_page(api, stream, name, state, ctx)
    if state.phase == "scan":
        return _scan_page(api, stream, name, state, ctx)
    return _archived_page(api, stream, name, state, ctx)
