"""Shared helpers for the connector contract suite: every registered source, one sandbox, the real OAuth flows.

Google tokens come from `tests.connectors.conftest.access_token` (the emulator's authorize + token
endpoints with PKCE). The other providers' tests keep their sign-in helpers private, so the one here
drives the product's own OAuth client (`tokens.clients.client_for`: msal for Microsoft, RFC 6749 +
PKCE for Salesforce and HubSpot) against the emulator, asking for the scopes the product asks for
(`sync.connections.scopes_of`), and builds the FetchContext as the sync layer does (Salesforce's
`instance_url` from the token answer as the API URL).

Per provider, `Provider` knows how to reach the emulator's knobs the contracts need: the fault
injector, the cursor-expiry switch, and a per-record delete.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from connectors.base import (
    JSON,
    ActivityObservation,
    Connector,
    Deletion,
    Endpoints,
    FetchContext,
    Observation,
    Page,
    PersonObservation,
    RateLimited,
)
from connectors.registry import CONNECTORS
from sandbox.faults import FaultInjector
from sandbox.server import Sandbox
from sync.connections import scopes_of
from tests.connectors.conftest import access_token as google_access_token
from tests.consent import sign_in as sandbox_sign_in
from tokens.oauth import TokenSet

KNOWN_PROVIDERS = frozenset({"google", "microsoft", "salesforce", "hubspot"})
MAX_PAGES = 60  # a full pass of a small world needs a handful; more means a paging loop


# -- the matrix ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One stream of one registered connector."""

    source: str
    stream: str

    @property
    def id(self) -> str:
        return f"{self.source}/{self.stream}"

    @property
    def connector(self) -> Connector:
        return CONNECTORS[self.source]

    @property
    def provider(self) -> str:
        return self.connector.provider


def all_cases() -> list[Case]:
    """Every (connector, stream) the registry declares, in registry order."""
    return [Case(name, stream) for name, connector in CONNECTORS.items() for stream in connector.streams]


# -- tokens and contexts ----------------------------------------------------------------------------------
def sign_in(sb: Sandbox, provider: str, account: str) -> TokenSet:
    """The consent flow as the product runs it: authorize URL (PKCE S256, login_hint), the emulator's
    redirect with a code, and the code exchange through the product's OAuth client."""
    if provider == "google":  # the connectors' shared Google helper (conftest)
        return TokenSet(google_access_token(sb, account, tuple(scopes_of("google"))), None, None, None)
    return sandbox_sign_in(sb, provider, account, "contract")


def context_for(sb: Sandbox, provider: str, account: str, **overrides: Any) -> FetchContext:
    """What the sync layer hands a connector for `account` (pipeline._context), on this sandbox."""
    tokens = sign_in(sb, provider, account)
    conf = sb.settings()
    extra = {k: str(v) for k, v in tokens.extra.items() if k in ("instance_url", "id")}
    endpoints = Endpoints(
        api_url=extra.get("instance_url") or conf[f"{provider.upper()}_API_URL"],
        ca_bundle=conf.get("CA_BUNDLE"),
        timeout=10,
    )
    fields: dict[str, Any] = {"now": sb.world.now, "backfill_days": 365, "page_size": 500, "extra": extra}
    fields.update(overrides)
    return FetchContext(access_token=tokens.access_token, endpoints=endpoints, account=account, **fields)


# -- driving passes ---------------------------------------------------------------------------------------
def round_trip(cursor: JSON) -> JSON:
    """The cursor as the store gives it back."""
    return json.loads(json.dumps(cursor))  # type: ignore[no-any-return]


def run_pass(case: Case, ctx: FetchContext, cursor: JSON | None = None, *, max_pages: int = MAX_PAGES) -> list[Page]:
    """Pages from `cursor` until `done`: every page made a call, and every page that is not the last
    moves the cursor on (a repeated cursor is a loop); more than `max_pages` pages fails."""
    pages: list[Page] = []
    for _ in range(max_pages):
        page = case.connector.fetch_page(case.stream, cursor, ctx)
        assert page.api_calls > 0, f"{case.id}: a page that made no HTTP call ({page.api_calls})"
        pages.append(page)
        if page.done:
            return pages
        assert page.cursor != cursor, f"{case.id}: page {len(pages)} handed back its own cursor (no progress)"
        cursor = page.cursor
    raise AssertionError(f"{case.id}: no end after {max_pages} pages")


@dataclass
class StormResult:
    """A pass through injected throttling: its pages, and each RateLimited the driver waited out."""

    pages: list[Page] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)


def run_pass_through_storm(
    case: Case, ctx: FetchContext, *, max_waits: int, max_wait_seconds: float = 5.0
) -> StormResult:
    """A full pass by a driver that honours Retry-After as the sync layer does: after `RateLimited` it
    sleeps and asks for the same page again (more than `max_waits` such waits, or one over
    `max_wait_seconds`, fails); after a partly throttled page it sleeps `page.retry_after` and goes on."""
    out = StormResult()
    cursor: JSON | None = None
    while len(out.pages) < MAX_PAGES:
        try:
            page = case.connector.fetch_page(case.stream, cursor, ctx)
        except RateLimited as exc:
            assert 0 < exc.retry_after <= max_wait_seconds, f"{case.id}: asked to wait {exc.retry_after}s: {exc}"
            assert len(out.waits) < max_waits, (
                f"{case.id}: page {len(out.pages) + 1} still throttled after {max_waits} waits in the pass: {exc}"
            )
            out.waits.append(exc.retry_after)
            time.sleep(exc.retry_after)
            continue
        out.pages.append(page)
        if page.done:
            return out
        cursor = page.cursor
        if page.retry_after:  # part of the page was throttled: progress was kept, the rest comes after the wait
            assert page.retry_after <= max_wait_seconds, f"{case.id}: asked to wait {page.retry_after}s"
            time.sleep(page.retry_after)
    raise AssertionError(f"{case.id}: no end after {MAX_PAGES} pages")


def storm_plan(seed: int, probability: float) -> JSON:
    """A fault plan for `FaultInjector.configure`: the first call and then `probability` of all calls
    (whole requests, and parts of the batches where the provider batches) answer 429, Retry-After 1."""
    return {
        "seed": seed,
        "rules": [
            {"kind": "429", "count": 1, "retry_after": 1},
            {"kind": "429", "probability": probability, "retry_after": 1, "scope": "request"},
            {"kind": "429", "probability": probability, "retry_after": 1, "scope": "part"},
        ],
    }


def observations(pages: Iterable[Page]) -> list[Observation]:
    return [o for p in pages for o in p.observations]


def records(pages: Iterable[Page]) -> list[ActivityObservation | PersonObservation]:
    """The observations that write rows (activities and people)."""
    return [o for o in observations(pages) if isinstance(o, ActivityObservation | PersonObservation)]


def deletions(pages: Iterable[Page]) -> list[str]:
    return [o.external_id for o in observations(pages) if isinstance(o, Deletion)]


def multiset(items: Iterable[Any]) -> Counter[Any]:
    return Counter(items)


def page_content(page: Page) -> tuple[Any, ...]:
    """What a page says, apart from the cursor (which may hold freshly minted server tokens)."""
    return (page.observations, page.rejections, page.done, page.full_resync)


# -- the providers' knobs ---------------------------------------------------------------------------------
class Provider:
    """How the contracts reach one emulator: its state, faults, cursor expiry and per-record deletes."""

    name: str

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    @property
    def faults(self) -> FaultInjector:
        return getattr(self.sb, self.name).faults  # type: ignore[no-any-return]

    def expire(self, case: Case, ctx: FetchContext) -> FetchContext:
        """Make the provider refuse every cursor handed out so far; the context to use afterwards."""
        raise NotImplementedError

    def delete(self, case: Case, ctx: FetchContext, victim: Observation) -> str:
        """Delete the record behind `victim` at the source; the external_id its Deletion must carry."""
        raise NotImplementedError

    def early_retries(self) -> int:
        """Requests sent before the Retry-After their client was given had elapsed (the emulator's count)."""
        return int(self.faults.snapshot()["early_retries"])


class GoogleProvider(Provider):
    name = "google"

    def expire(self, case: Case, ctx: FetchContext) -> FetchContext:
        google = self.sb.google
        if case.source == "gmail":
            # Gmail expires history older than its retention, never the mailbox's current id: the
            # mailbox moves on first (a star: no observation changes), then its history expires,
            # and history.list answers 404 for any earlier startHistoryId.
            with google.lock:
                message_id = next(iter(google.mailbox(ctx.account).entries.values())).msg.id
            google.modify_labels(ctx.account, message_id, add=["STARRED"])
            google.expire_history(ctx.account)
        elif case.source == "google_calendar":
            google.calendar.expire_sync_tokens()  # events.list: 410 fullSyncRequired
        else:
            google.people.expire_sync_tokens(ctx.account)  # 400 EXPIRED_SYNC_TOKEN
        return ctx

    def delete(self, case: Case, ctx: FetchContext, victim: Observation) -> str:
        google = self.sb.google
        if case.source == "gmail":
            assert google.delete_message(ctx.account, victim.external_id)
        elif case.source == "google_calendar":  # events.delete leaves a cancelled event behind
            calendar_id, event_id = victim.external_id.split("/", 1)
            assert google.calendar.cancel_event(calendar_id, event_id)
        else:
            google.people.delete_contact(ctx.account, victim.external_id)
        return victim.external_id


class MicrosoftProvider(Provider):
    name = "microsoft"

    def expire(self, case: Case, ctx: FetchContext) -> FetchContext:
        if case.source == "outlook_mail":
            self.sb.microsoft.forget_sync_states()  # 410 syncStateNotFound
        else:
            self.sb.microsoft.reset_sync_state(ctx.account)  # 410 resyncRequired
        return ctx

    def delete(self, case: Case, ctx: FetchContext, victim: Observation) -> str:
        ms = self.sb.microsoft
        if case.source == "outlook_mail":
            stream, message_id = victim.external_id.split(":", 1)
            folder = {"inbox": "inbox", "sent": "sentitems"}[stream]
            assert ms.delete_message(ctx.account, folder, message_id)
        elif case.source == "outlook_calendar":
            assert ms.delete_event(ctx.account, victim.external_id)
        else:
            assert ms.delete_contact(ctx.account, victim.external_id)
        return victim.external_id


class SalesforceProvider(Provider):
    name = "salesforce"

    def expire(self, case: Case, ctx: FetchContext) -> FetchContext:
        # Salesforce keeps no cursor state to expire: the Recycle Bin keeps deletions 15 days, so a
        # cursor whose pass began longer ago than that is what expires. Fifteen days later:
        return replace(ctx, now=ctx.now + timedelta(days=15))

    def delete(self, case: Case, ctx: FetchContext, victim: Observation) -> str:
        self.sb.salesforce.delete(victim.external_id)
        return victim.external_id


class HubspotProvider(Provider):
    name = "hubspot"

    def delete(self, case: Case, ctx: FetchContext, victim: Observation) -> str:
        hub = self.sb.hubspot
        with hub.lock:
            if case.stream == "owners":  # a deactivated user: the owners API lists it as archived
                owner = hub.portal.owners[int(victim.external_id.split(":", 1)[1])]
                owner.archived = True
                owner.updated_ms = hub.now_ms()
            else:
                record_id = int(victim.external_id.rsplit(":", 1)[-1])
                hub.store.archive(case.stream, record_id)
        return victim.external_id


PROVIDERS: dict[str, type[Provider]] = {
    p.name: p for p in (GoogleProvider, MicrosoftProvider, SalesforceProvider, HubspotProvider)
}


def provider_of(sb: Sandbox, case: Case) -> Provider:
    return PROVIDERS[case.provider](sb)
