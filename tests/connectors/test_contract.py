"""The connector contract: every registered connector x every stream it declares, driven with its real
client library over HTTPS against the sandbox (one `Sandbox(world, tls=True)` serves every provider).

 1. it declares itself (streams, scopes, provider) and `whoami` answers a normalized address;
 2. a full pass ends, a page at a time, every page making a call and moving the cursor on;
 3. a cursor survives the store's JSON round trip: fed back, it gives the same pages;
 4. normalization is deterministic: two full passes observe the same things;
 5. syncing twice leaves the same rows: the incremental pass after a full pass, on unchanged data,
    observes nothing the full pass did not (no new or changed record, no deletion of a record it saw);
 6. a cursor the provider expired raises `CursorExpired`, and the full pass that follows observes
    what the first one did;
 7. a 429 storm completes: a driver that sleeps `RateLimited.retry_after` gets the same observations,
    and never comes back before the Retry-After it was given;
 8. a record deleted at the source comes back as a `Deletion` of its external id.

Combinations a provider cannot do are left out of the parametrization, each with the reason.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connectors.base import CursorExpired, FetchContext, Observation
from connectors.emails import normalize_email
from connectors.registry import CONNECTORS
from sandbox.server import Sandbox
from sandbox.tls import generate_certs
from sandbox.world import World, generate_world
from tests.connectors.contract_support import (
    KNOWN_PROVIDERS,
    Case,
    StormResult,
    all_cases,
    context_for,
    deletions,
    multiset,
    observations,
    page_content,
    provider_of,
    records,
    round_trip,
    run_pass,
    run_pass_through_storm,
    storm_plan,
)

pytestmark = pytest.mark.filterwarnings("ignore:Change your:DeprecationWarning")  # msal, on the Microsoft flow

ACCOUNT = "alice@acme.test"
PAGE_SIZE = 20  # honoured by Gmail (list size) and HubSpot (searches per page); the others page as the API does
STORM_PROBABILITY = 0.4
# The driver's bound on Retry-After waits in one stormy pass. At 40% throttling, a page needing k calls
# that must each get through in one attempt (a list or delta call, a batch whose throttled parts are
# retried in place) takes 0.6**-k - 1 waits on average: under 4 for k <= 3, and every pass here is one
# to three pages. Each case's fault plan is seeded by its id, so every run throttles the same calls.
STORM_MAX_WAITS = 15

CASES = all_cases()

# Providers whose listing order is documented, so two passes must agree in order too: Gmail lists newest
# first, Salesforce queries ORDER BY SystemModstamp, Id, HubSpot searches sort by last-modified then id.
# Graph delta, Calendar events.list (no orderBy) and the People API promise no order.
ORDERED_SOURCES = frozenset({"gmail", "salesforce", "hubspot"})

# Contract 6 (cursor expiry) does not apply to:
NO_CURSOR_EXPIRY = {
    # HubSpot hands out no sync token: the cursor is the connector's own place in a last-modified search
    # walk (times and ids), which nothing at HubSpot can invalidate, so the emulator has no knob for it.
    **{c.id: "no provider-side cursor state" for c in CASES if c.source == "hubspot"},
    # Its cursor is never too old by design: the stream emits no records (contacts carry the account
    # name), so there are no deletions the Recycle Bin could have dropped (connectors/salesforce.py).
    "salesforce/accounts": "no records, no deletions to miss",
}
# Contract 8 (a deleted record disappears) does not apply to:
NO_RECORD_DELETE = {
    # Salesforce never deletes users (they are deactivated; User has no IsDeleted field).
    "salesforce/users": "users cannot be deleted",
    # The stream emits no records of its own: there is nothing whose disappearance it could report.
    "salesforce/accounts": "no records of its own",
    # Likewise: it re-sends the contacts of renamed companies, which the contacts stream deletes.
    "hubspot/companies": "no records of its own",
}


def cases(excluded: dict[str, str] | None = None) -> list[object]:
    """The matrix as pytest parameters (ids like "gmail/messages"), less the excluded combinations."""
    return [pytest.param(c, id=c.id) for c in CASES if c.id not in (excluded or {})]


def fresh_context(sb: Sandbox, case: Case) -> FetchContext:
    return context_for(sb, case.provider, ACCOUNT, page_size=PAGE_SIZE)


# -- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def contract_world() -> World:
    return generate_world(seed=11, size=150)


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CA and certificate for every sandbox of the module: written here once, before any sandbox
    (the storms start theirs in parallel), and reused by each."""
    path = tmp_path_factory.mktemp("contract-ca")
    generate_certs(str(path))
    return path


@pytest.fixture(scope="module")
def shared(contract_world: World, cert_dir: Path) -> Iterator[Sandbox]:
    """The sandbox of the read-only contracts (1-5): nothing in them changes its data."""
    with Sandbox(contract_world, tls=True, cert_dir=str(cert_dir)) as sb:
        yield sb


@pytest.fixture(scope="module")
def shared_ctx(shared: Sandbox) -> Callable[[Case], FetchContext]:
    """One signed-in context per provider on the shared sandbox."""
    made: dict[str, FetchContext] = {}

    def get(case: Case) -> FetchContext:
        if case.provider not in made:
            made[case.provider] = fresh_context(shared, case)
        return made[case.provider]

    return get


@pytest.fixture
def fresh(contract_world: World, cert_dir: Path) -> Iterator[Sandbox]:
    """A sandbox of its own, for a contract that expires cursors or deletes records."""
    with Sandbox(contract_world, tls=True, cert_dir=str(cert_dir)) as sb:
        yield sb


# -- 1. declarations and identity ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases())
def test_declares_itself_and_whoami_is_a_normalized_address(
    case: Case, shared_ctx: Callable[[Case], FetchContext]
) -> None:
    connector = case.connector
    assert CONNECTORS[connector.name] is connector
    assert isinstance(connector.streams, tuple) and connector.streams
    assert all(isinstance(s, str) and s for s in connector.streams)
    assert len(set(connector.streams)) == len(connector.streams)
    assert isinstance(connector.scopes, tuple) and connector.scopes
    assert all(isinstance(s, str) and s for s in connector.scopes)
    assert connector.provider in KNOWN_PROVIDERS
    address = connector.whoami(shared_ctx(case))
    assert address == normalize_email(address) == ACCOUNT


# -- 2. a full pass ends --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases())
def test_a_full_pass_terminates(case: Case, shared_ctx: Callable[[Case], FetchContext]) -> None:
    pages = run_pass(case, shared_ctx(case))  # bounded; every page calls, no cursor comes back unchanged
    assert pages[-1].done and not any(p.done for p in pages[:-1])


# -- 3. cursors through JSON ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases())
def test_a_cursor_survives_a_json_round_trip(case: Case, shared_ctx: Callable[[Case], FetchContext]) -> None:
    ctx = shared_ctx(case)
    for number, page in enumerate(run_pass(case, ctx), 1):
        stored = round_trip(page.cursor)
        assert stored == page.cursor, f"page {number}'s cursor changes through JSON: {page.cursor!r}"
        # from here to the end of the pass (after the last page: the incremental pass), both ways
        as_given = [page_content(p) for p in run_pass(case, ctx, page.cursor)]
        as_stored = [page_content(p) for p in run_pass(case, ctx, stored)]
        assert as_stored == as_given, f"the pages after page {number} differ once its cursor went through JSON"


# -- 4. deterministic normalization ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases())
def test_normalization_is_deterministic(case: Case, shared_ctx: Callable[[Case], FetchContext]) -> None:
    ctx = shared_ctx(case)
    first, second = run_pass(case, ctx), run_pass(case, ctx)
    if case.source in ORDERED_SOURCES:
        assert observations(second) == observations(first)
    else:
        assert multiset(observations(second)) == multiset(observations(first))
    assert multiset(r for p in second for r in p.rejections) == multiset(r for p in first for r in p.rejections)


# -- 5. syncing twice leaves the same rows ------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases())
def test_syncing_twice_leaves_the_same_rows(case: Case, shared_ctx: Callable[[Case], FetchContext]) -> None:
    """An incremental pass may read again what it saw (a lookback, owners re-listed, a deletion restated):
    each such observation is one the full pass made, so it writes nothing. Anything else would change rows."""
    ctx = shared_ctx(case)
    full = run_pass(case, ctx)
    again = run_pass(case, ctx, full[-1].cursor)
    seen = set(observations(full))
    present = {o.external_id for o in records(full)}
    changed = [o for o in records(again) if o not in seen]
    assert not changed, f"{len(changed)} new or changed records on unchanged data, e.g. {changed[0]!r}"
    removed = sorted(set(deletions(again)) & present)
    assert not removed, f"unchanged records deleted: {removed[:5]}"
    unknown = set(deletions(again)) - set(deletions(full))
    assert not unknown, f"deletions of records the full pass never mentioned: {sorted(unknown)[:5]}"


# -- 6. an expired cursor resyncs to the same state ------------------------------------------------------------------
@pytest.mark.parametrize("case", cases(NO_CURSOR_EXPIRY))
def test_an_expired_cursor_resyncs_to_the_same_state(case: Case, fresh: Sandbox) -> None:
    ctx = fresh_context(fresh, case)
    first = run_pass(case, ctx)
    later = provider_of(fresh, case).expire(case, ctx)
    with pytest.raises(CursorExpired):
        case.connector.fetch_page(case.stream, first[-1].cursor, later)
    resync = run_pass(case, later)
    assert all(p.full_resync for p in resync)  # so the sync layer sweeps what vanished meanwhile
    assert set(observations(resync)) == set(observations(first))


# -- 7. a 429 storm completes ------------------------------------------------------------------------------------
STORM_TEST = "test_a_429_storm_completes"


@dataclass
class StormOutcome:
    """One case's storm: the observations of an undisturbed pass, the stormy pass, or what went wrong."""

    baseline: list[Observation] = field(default_factory=list)
    result: StormResult | None = None
    failure: Exception | None = None
    injected: int = 0
    early_retries: int = 0


def _storm(case: Case, world: World, cert_dir: Path) -> StormOutcome:
    """In a sandbox of the case's own (its own fault plan, seeded by the case id, its own early-retry
    count): an undisturbed pass, then the same pass through the storm."""
    outcome = StormOutcome()
    with Sandbox(world, tls=True, cert_dir=str(cert_dir)) as sb:
        provider = provider_of(sb, case)
        try:
            ctx = fresh_context(sb, case)
            outcome.baseline = observations(run_pass(case, ctx))
            provider.faults.configure(storm_plan(zlib.crc32(case.id.encode()), STORM_PROBABILITY))
            outcome.result = run_pass_through_storm(case, ctx, max_waits=STORM_MAX_WAITS)
        except Exception as exc:  # kept for the case's own test to raise
            outcome.failure = exc
        finally:
            provider.faults.clear()
        outcome.injected = sum(provider.faults.snapshot()["injected"].values())
        outcome.early_retries = provider.early_retries()
    return outcome


@pytest.fixture(scope="module")
def storms(request: pytest.FixtureRequest, contract_world: World, cert_dir: Path) -> dict[str, StormOutcome]:
    """Every selected case's storm at once: each mostly sleeps out Retry-Afters, in a sandbox of its own."""
    selected = [
        item.callspec.params["case"]  # type: ignore[attr-defined]
        for item in request.session.items
        if getattr(item, "originalname", None) == STORM_TEST and item.module is request.module  # type: ignore[attr-defined]
    ]
    with ThreadPoolExecutor(max_workers=max(1, len(selected))) as pool:
        futures = {case.id: pool.submit(_storm, case, contract_world, cert_dir) for case in selected}
        return {case_id: future.result() for case_id, future in futures.items()}


@pytest.mark.parametrize("case", cases())
def test_a_429_storm_completes(case: Case, storms: dict[str, StormOutcome]) -> None:
    outcome = storms[case.id]
    assert outcome.early_retries == 0, "the connector came back before the Retry-After it was given"
    if outcome.failure is not None:
        raise outcome.failure
    assert outcome.result is not None and outcome.injected > 0  # the plan's first call at least was refused
    assert multiset(observations(outcome.result.pages)) == multiset(outcome.baseline)


# -- 8. a deleted record disappears ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases(NO_RECORD_DELETE))
def test_a_deleted_source_record_disappears(case: Case, fresh: Sandbox) -> None:
    ctx = fresh_context(fresh, case)
    full = run_pass(case, ctx)
    # any record will do; of the owners, one other than the signed-in user
    candidates = [o for o in records(full) if not (case.stream == "owners" and ACCOUNT in getattr(o, "emails", ()))]
    assert candidates, "the world gives this stream no record to delete"
    gone = provider_of(fresh, case).delete(case, ctx, candidates[0])
    after = run_pass(case, ctx, full[-1].cursor)
    assert gone in deletions(after)
    assert gone not in {o.external_id for o in records(after)}
