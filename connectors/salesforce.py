"""Salesforce as a source: users, contacts, leads, calls, logged emails and meetings, one query page per call.

Each stream is one SOQL query over queryAll (so deleted and merged rows come back as IsDeleted),
ordered by (SystemModstamp, Id), 2,000 rows a page (Sforce-Query-Options batchSize), one page per
fetch_page. A full pass reads everything; later passes read rows with SystemModstamp after the
high-water mark minus a 5-minute lookback (transactions commit after they stamp). The tasks query asks
only for calls and logged emails (salesforce_soql.TASK_FILTER): to-dos are never fetched, and a deleted
call or email still comes back (its subtype cannot change) to become a Deletion.

Cursor, stored verbatim by the sync layer (times ISO 8601 UTC):
  {"v": 1, "full": F, "started": S, "high": H, "next": U, "tail": {Id: MS}}
F: the pass under way is a full pass; S: ctx.now when it began; H: the highest SystemModstamp seen
(null before any row); U: the nextRecordsUrl of the page to fetch next (null: the pass is over); tail:
the rows emitted within the lookback of H, {Id: [SystemModstamp in epoch ms, content digest]}. A row the
lookback brings back with the same SystemModstamp and content is the version already emitted and is left out
(connectors.lookback; the content counts because SystemModstamp is to the second), so an unchanged org costs
one query per stream and emits nothing.
A cursor whose pass began more than 14 days ago is `CursorExpired`: Salesforce keeps deleted rows in
the Recycle Bin (queryAll, getDeleted) for 15 days, so older deletions may be gone unseen and only a
full pass (whose end sweeps what it did not see) converges. An expired query locator resumes the same
pass at `SystemModstamp >= H`.

Merges: the losing contact or lead comes back deleted with MasterRecordId = the winner. It becomes a
Deletion, and the winner a PersonObservation with `merged_from=(loser,)` in the same page: from the page
itself when the winner is in it, else fetched by id (one query per 200 winners; merges are rare). The
sync layer should treat merged_from as additive: the winner seen again later comes without it.

The `accounts` stream emits no records of its own (contacts carry Account.Name): its full pass is one
query for the newest account, and afterwards each page of changed accounts (200 a page, no lookback)
re-emits the live contacts of those accounts, so a renamed company reaches its contacts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import JSON, ConnectorError, CursorExpired, FetchContext, Page, PersonObservation, owned_by
from connectors.emails import InvalidAddress, normalize_email
from connectors.lookback import Tail, digest
from connectors.salesforce_api import BATCH_SIZE, LocatorExpired, SalesforceApi, next_url, open_api, records
from connectors.salesforce_mapping import Mapped, map_event, map_person, map_task, parse_datetime, text
from connectors.salesforce_soql import by_ids, contacts_of_accounts, newest_account, stream_query

name: str = "salesforce"
provider: str = "salesforce"
streams: tuple[str, ...] = ("users", "accounts", "contacts", "leads", "tasks", "events")
# api: REST queries; refresh_token: offline access; id: the userinfo endpoint whoami reads
scopes: tuple[str, ...] = ("api", "id", "refresh_token")

LOOKBACK = timedelta(minutes=5)
CURSOR_MAX_AGE = timedelta(days=14)  # one day inside the Recycle Bin's 15
ACCOUNT_BATCH = 200  # changed accounts per page: each page also reads their contacts
ID_CHUNK = 200  # ids per `Id IN (...)` query, well inside the URL length limit
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PERSON_KINDS = {"users": "user", "contacts": "contact", "leads": "lead"}


@dataclass(frozen=True)
class Cursor:
    """Where a stream stands; see the module docstring for the JSON form."""

    full: bool
    started: datetime
    high: datetime | None
    next: str | None
    tail: Tail = field(default_factory=Tail)

    def to_json(self) -> JSON:
        """The stored form (plain JSON types only)."""
        return {
            "v": 1,
            "full": self.full,
            "started": self.started.isoformat(),
            "high": self.high.isoformat() if self.high is not None else None,
            "next": self.next,
            "tail": self.tail.to_json(),
        }

    @classmethod
    def from_json(cls, raw: JSON) -> Cursor:
        """The cursor, or CursorExpired for anything this version did not write."""
        try:
            started = datetime.fromisoformat(str(raw["started"]))
            high = datetime.fromisoformat(str(raw["high"])) if raw.get("high") else None
            nxt = raw.get("next")
            if (
                raw.get("v") != 1
                or not isinstance(raw.get("full"), bool)
                or (nxt is not None and not isinstance(nxt, str))
            ):
                raise ValueError("unknown cursor shape")
        except (KeyError, TypeError, ValueError) as exc:
            raise CursorExpired(f"salesforce cursor not understood: {exc}") from None
        return cls(raw["full"], _aware(started), _aware(high) if high else None, nxt, Tail.from_json(raw.get("tail")))


def _aware(when: datetime) -> datetime:
    """UTC-aware, so cursor ages compare whatever clock wrote them."""
    return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _high(current: datetime | None, rows: list[JSON]) -> datetime | None:
    """The high-water mark after these rows: where the next pass (or a lost locator) resumes."""
    stamps = [s for s in (parse_datetime(r.get("SystemModstamp")) for r in rows) if s is not None]
    return max([*stamps, *([current] if current is not None else [])], default=None)


def _map(stream: str, rows: list[JSON]) -> Mapped:
    """The stream's rows through their mapper."""
    out = Mapped()
    for row in rows:
        if stream in PERSON_KINDS:
            map_person(row, PERSON_KINDS[stream], out)
        elif stream == "tasks":
            map_task(row, out)
        elif stream == "events":
            map_event(row, out)
    return out


def _chunks(items: list[str], size: int) -> list[list[str]]:
    """Id lists short enough for one GET query's URL."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def _apply_merges(api: SalesforceApi, stream: str, rows: list[JSON], out: Mapped) -> None:
    """Winners of the page's merges carry their losers in merged_from (fetched when not in the page)."""
    losers: dict[str, list[str]] = {}
    for row in rows:
        loser, winner = text(row, "Id"), text(row, "MasterRecordId")
        if row.get("IsDeleted") is True and loser and winner:
            losers.setdefault(winner, []).append(loser)
    if not losers:
        return
    present = {o.external_id for o in out.observations if isinstance(o, PersonObservation)}
    missing = sorted(w for w in losers if w not in present)
    for chunk in _chunks(missing, ID_CHUNK):
        fetched = _map(stream, list(api.records_of(by_ids(stream, chunk), f"salesforce {stream} merge winners")))
        out.observations.extend(fetched.observations)
        out.rejections.extend(fetched.rejections)
    out.observations[:] = [
        dataclasses.replace(o, merged_from=tuple(sorted(losers[o.external_id])))
        if isinstance(o, PersonObservation) and o.external_id in losers
        else o
        for o in out.observations
    ]


def _first_page(api: SalesforceApi, stream: str, state: Cursor, batch: int) -> JSON:
    """The opening page of a pass, or of its resumption at the high-water mark after a lost locator."""
    what = f"salesforce {stream} query"
    if state.next is None:
        # accounts skip the lookback: re-reading the newest account would re-send its contacts every poll
        lookback = timedelta() if stream == "accounts" else LOOKBACK
        after = state.high - lookback if state.high is not None and not state.full else None
        query = newest_account() if stream == "accounts" and state.full else stream_query(stream, after=after)
        return api.query_all(query, what, batch)
    try:
        return api.more(state.next, f"salesforce {stream} queryMore", batch)
    except LocatorExpired:
        return api.query_all(stream_query(stream, at_least=state.high), what, batch)


def _next_state(stream: str, cursor: JSON | None, now: datetime) -> Cursor:
    """The cursor of the page to fetch: a new full pass, the pass under way, or a new incremental pass."""
    if cursor is None:
        return Cursor(True, now, None, None)
    state = Cursor.from_json(cursor)
    if stream != "accounts" and now - state.started > CURSOR_MAX_AGE:
        raise CursorExpired(
            f"salesforce {stream} cursor from {state.started.isoformat()} is older than the Recycle Bin keeps deletions"
        )
    if state.next is None:  # caught up: a new incremental pass begins now
        return Cursor(False, now, state.high, None, state.tail)
    return state


def _stamp_ms(row: JSON) -> int | None:
    stamp = parse_datetime(row.get("SystemModstamp"))
    return None if stamp is None else (stamp - _EPOCH) // timedelta(milliseconds=1)


def _fresh(state: Cursor, rows: list[JSON], high: datetime | None) -> tuple[list[JSON], Tail]:
    """The rows not emitted already (the lookback's re-reads left out), and the tail up to `high` after them."""
    versions = [(text(r, "Id") or "", _stamp_ms(r), digest(r)) for r in rows]
    fresh = [r for r, version in zip(rows, versions, strict=True) if not state.tail.emitted(*version)]
    floor = high - LOOKBACK - timedelta(seconds=1) if high is not None else _EPOCH  # queries bound to the second
    return fresh, state.tail.add(versions, (floor - _EPOCH) // timedelta(milliseconds=1))


def _newer(row: JSON, high: datetime | None) -> bool:
    """Modified after `high` (the query's bound is to the second; this is to the millisecond)."""
    stamp = parse_datetime(row.get("SystemModstamp"))
    return high is None or stamp is None or stamp > high


def _accounts_rows(api: SalesforceApi, state: Cursor, rows: list[JSON]) -> Mapped:
    """Live contacts of the changed accounts of this page (nothing on the one-row opening query)."""
    if state.full:
        return Mapped()
    bound = state.high if state.next is None else None  # later pages of the pass are all new
    changed = sorted({i for r in rows if r.get("IsDeleted") is not True and _newer(r, bound) and (i := text(r, "Id"))})
    out = Mapped()
    for chunk in _chunks(changed, ID_CHUNK):
        for row in api.records_of(contacts_of_accounts(chunk), "salesforce contacts of changed accounts"):
            map_person(row, "contact", out)
    return out


def fetch_page(stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` (None starts a full pass); see the module docstring for the cursor."""
    if stream not in streams:
        raise ConnectorError(f"salesforce has no stream {stream!r}; it has {streams}")
    state = _next_state(stream, cursor, _aware(ctx.now))
    api = open_api(ctx)
    accounts = stream == "accounts"
    page = _first_page(api, stream, state, BATCH_SIZE if not accounts or state.full else ACCOUNT_BATCH)
    rows = records(page)
    high, tail = _high(state.high, rows), state.tail
    if accounts:
        out = _accounts_rows(api, state, rows)
        out.observations = owned_by("contacts", out.observations)
    else:
        fresh, tail = _fresh(state, rows, high)
        out = _map(stream, fresh)
        if stream in ("contacts", "leads"):
            _apply_merges(api, stream, fresh, out)
    url = next_url(page, f"salesforce {stream} query")
    if url is not None and url == state.next:
        raise ConnectorError(f"salesforce {stream}: the server repeated nextRecordsUrl {url}")
    if accounts and state.full:
        url = None  # the opening query only finds where to start watching
    after = Cursor(state.full, state.started, high, url, tail)
    full_resync = state.full and not accounts
    return Page(out.observations, out.rejections, after.to_json(), url is None, api.calls, full_resync)


def whoami(ctx: FetchContext) -> str:
    """The connected user's email from the userinfo endpoint, normalized."""
    info: dict[str, Any] = open_api(ctx).userinfo()
    try:
        return normalize_email(str(info.get("email") or ""))
    except InvalidAddress as exc:
        raise ConnectorError(f"salesforce userinfo: no usable email ({exc.reason})") from None
