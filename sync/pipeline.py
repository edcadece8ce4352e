"""Pages of one stream of one connection, under DESIGN.md's idempotency rules.

A job carries (connection, stream, cursor_version). A stale version means the page was done: the
job only makes sure the chain goes on. The page's records and the cursor after it commit in one
transaction, guarded by a compare-and-swap on the version and by the stream's lease; the next page
is enqueued only after that commit. A crash anywhere re-runs at most one page, harmlessly.

Read-ahead: while a page is stored, the job already fetches the next one, and its commit keeps the lease
for that page instead of enqueueing it, up to SXSYNC_READ_AHEAD_PAGES pages a job (then the next page is
enqueued as usual). Each page is still its own transaction and checkpoint; a crash loses at most the page
read ahead (its calls), and the job's unacked message, redelivered, re-enqueues the chain where it stands.

A page that crashes its worker every time (SIGKILL, OOM, a segfault in a parser: nothing runs, no
retry is counted, and the broker redelivers the unacked message forever) is caught by a crash
counter in the store: a job that holds the lease counts itself in `crash_count` (for
`crash_version`) in a committed transaction before it fetches, and clears the count on any end it
lives to see. A job that finds MAX_CRASHES uncleared counts at its version does not fetch: it
parks the stream (failed, with PARKED_ERROR) for ops to look at and retry.

A SIGKILL takes down every job of its process, so the innocent pages in flight beside a poison one
are counted too. A page with an uncleared count is therefore a suspect and runs alone in its worker
process (`SOLO`): the crashes it counts from then on are its own, and an innocent page that was
counted once (it ran beside a poison page) clears its count on its solo run instead of being parked.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from connectors.base import (
    JSON,
    ConnectorError,
    CursorExpired,
    Endpoints,
    FetchContext,
    Page,
    RateLimited,
    Unauthorized,
)
from connectors.registry import get_connector
from models.failpoints import failpoint
from models.rls import org_of, org_scope
from models.tables import Connection, Org, SyncState
from sync.ingest import IngestStats, ingest_page, sweep_unseen, target_for
from sync.logs import log_context
from sync.ratelimit import quota_for
from sync.runtime import Runtime
from tokens.access import ReauthRequired, get_access_token

log = logging.getLogger("sxsync.pipeline")

Status = Literal[
    "stale", "busy", "inactive", "committed", "done", "rate_limited", "resync", "reauth", "lost_lease", "parked"
]
MAX_ATTEMPTS = 6  # the first try and Dramatiq's retries; then the stream is marked failed
MAX_CRASHES = 3  # page jobs at one version that killed their worker; the next delivery parks the stream
PARKED_ERROR = f"parked: the page job killed its worker {MAX_CRASHES} times"
WORKER_ID = f"{uuid.uuid4().hex[:12]}"


class SoloLock:
    """One worker process's page jobs: they share it, and a suspect page runs alone (waiting solos go first)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._solo = False
        self._waiting = 0

    @contextmanager
    def hold(self, *, solo: bool) -> Iterator[None]:
        """Run beside other jobs, or (solo) once no other job of this process runs and none starts."""
        with self._cond:
            if solo:
                self._waiting += 1
                try:
                    self._cond.wait_for(lambda: not self._solo and self._shared == 0)
                finally:
                    self._waiting -= 1
                self._solo = True
            else:
                self._cond.wait_for(lambda: not self._solo and self._waiting == 0)
                self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                if solo:
                    self._solo = False
                else:
                    self._shared -= 1
                self._cond.notify_all()


SOLO = SoloLock()


@dataclass(frozen=True)
class Outcome:
    """What a job did, for the actor, logs and tests."""

    status: Status
    version: int
    stats: IngestStats | None = None
    api_calls: int = 0


def run_page(rt: Runtime, connection_id: int, stream: str, cursor_version: int) -> Outcome:
    """Fetch, store and checkpoint one page; enqueue the next one (or finish the chain).

    The job works inside its connection's org (row-level security on PostgreSQL), found before any org is set.
    """
    with rt.sessions() as session:
        org_id = org_of(session, "connection", connection_id)
    if org_id is None:
        return Outcome("inactive", cursor_version)
    with org_scope(org_id):
        with rt.sessions() as session:
            state = _state(session, connection_id, stream)
            connection = session.get(Connection, connection_id)
        if state is None or connection is None:
            return Outcome("inactive", cursor_version)
        with log_context(org=org_id, connection=connection_id, stream=stream, source=connection.source):
            return _run(rt, connection, state, cursor_version)


def _run(rt: Runtime, connection: Connection, state: SyncState, cursor_version: int) -> Outcome:
    """The page job once its state and connection are loaded."""
    if connection.status != "active":
        _stop_chain(rt, state.id, error=None)
        return Outcome("inactive", state.version)
    if state.version != cursor_version:
        _keep_chain_going(rt, state)
        return Outcome("stale", state.version)
    suspect = state.crash_version == cursor_version and state.crash_count > 0  # it was in flight at a crash
    with SOLO.hold(solo=suspect):  # before the lease: a job waiting its turn holds nothing
        owner = f"{WORKER_ID}:{uuid.uuid4().hex[:8]}"
        with rt.writes.begin() as session:  # one transaction: the lease and this job's crash count
            taken = _take_lease(session, rt, state.id, cursor_version, owner)
            counted = _count_crash(session, state.id, owner, cursor_version) if taken else "busy"
        if counted == "busy":
            _retry_after_lease(rt, state)
        if counted != "counted":
            if counted == "parked":
                log.error("page job parked", extra={"state": state.id, "version": cursor_version})
            return Outcome(counted, cursor_version)
        run = _Run(state)
        outcome: Outcome | None = None
        try:
            outcome = _store_pages(rt, connection, run, owner)
            return outcome
        finally:  # any end this job lives to see (a stored page cleared it in its own transaction); a
            if outcome is None or outcome.status not in ("committed", "done"):  # SIGKILL never gets here
                _clear_crashes(rt, state.id, run.state.version)


@dataclass
class _Run:
    """The page a job is on: a job stores up to `read_ahead_pages` pages, fetching each next one meanwhile."""

    state: SyncState
    ahead: Future[Page] | None = None  # the next page, fetched while this one was stored
    pages: int = 0


def _store_pages(rt: Runtime, connection: Connection, run: _Run, owner: str) -> Outcome:
    """Store pages under the lease until the stream is done, a page leaves the run, or the run is long enough.

    A chain that fetched each page only after storing the last one left the provider's budget idle during
    every store (a HubSpot contacts page: 3 searches, then ~0.4 s of store). While a page is stored its
    next page is fetched, and the commit keeps the lease for it instead of enqueueing it; each page is
    still its own transaction and checkpoint, so a crash re-fetches at most the page read ahead.
    """
    while True:
        outcome = _fetch_and_commit(rt, connection, run, owner)
        if run.ahead is None:
            return outcome
        following = _continue(rt, connection, run, outcome.version, owner)
        if following is None:
            return outcome
        connection, run.state = following


def _continue(
    rt: Runtime, connection: Connection, run: _Run, version: int, owner: str
) -> tuple[Connection, SyncState] | None:
    """The stream and its connection for the page read ahead, unless the connection stopped meanwhile."""
    with rt.sessions() as session:
        state = _state(session, connection.id, run.state.stream)
        now = session.get(Connection, connection.id)
    if state is None or now is None or state.version != version or state.lease_owner != owner:  # not ours now
        run.ahead = None
        return None
    if now.status != "active":  # paused or disconnected while this page was stored
        run.ahead = None
        _stop_chain(rt, state.id, error=None)
        _clear_crashes(rt, state.id, version)  # the commit counted this job in flight at the page it drops
        return None
    return now, state


def _fetch_and_commit(rt: Runtime, connection: Connection, run: _Run, owner: str) -> Outcome:
    """One page under the lease: fetch (or take the page read ahead), then store and checkpoint (or hold,
    resync, stop, fail). Sets `run.ahead` when the next page is being fetched and the lease is kept for it."""
    state = run.state
    connection_id, stream, cursor_version = connection.id, state.stream, state.version
    ahead, run.ahead = run.ahead, None
    try:
        page = ahead.result() if ahead is not None else _fetch(rt, connection, stream, state.cursor)
    except RateLimited as exc:
        delay = exc.retry_after + random.uniform(0, min(5.0, exc.retry_after / 4 + 0.5))
        _hold(rt, state.id, owner, delay, f"rate limited: {exc}")
        rt.send(connection_id, stream, cursor_version, delay)
        return Outcome("rate_limited", cursor_version)
    except CursorExpired as exc:
        version = _restart_full_pass(rt, state.id, owner, cursor_version, str(exc))
        if version is None:
            return Outcome("lost_lease", cursor_version)
        _send_next(rt, connection_id, stream, version)
        return Outcome("resync", version)
    except ReauthRequired:
        _stop_chain(rt, state.id, error="reauthorization required")
        return Outcome("reauth", cursor_version)
    except Exception as exc:
        _record_failure(rt, state.id, owner, exc)
        raise
    run.pages += 1
    if _reads_ahead(rt, run, state, page):
        run.ahead = _read_ahead(rt, connection, stream, page.cursor)
    try:
        failpoint("after_fetch", connection_id)
        outcome = _commit(rt, connection, state, owner, page, keep_lease=run.ahead is not None)
    except Exception as exc:  # storing failed: count the attempt and free the lease (a no-op once committed)
        run.ahead = None  # its calls are lost; the next job fetches that page again
        _record_failure(rt, state.id, owner, exc)
        raise
    if outcome.status != "committed":
        run.ahead = None
    return outcome


def _reads_ahead(rt: Runtime, run: _Run, state: SyncState, page: Page) -> bool:
    """Fetch the page after this one while storing it? Not after the last page, nor when the provider asked
    for a wait, nor beyond the run's length, nor after a page that read nothing and left the cursor as it
    was (a loop spends no more than a page a job); nor while storing a pass's first page, the one a new
    connection waits for (time to first data): the next page's client work would compete with its store."""
    if page.done or page.retry_after or state.cursor is None:
        return False
    if not page.observations and not page.rejections and page.cursor == state.cursor:
        return False
    return run.pages < rt.settings.read_ahead_pages


def _read_ahead(rt: Runtime, connection: Connection, stream: str, cursor: JSON | None) -> Future[Page]:
    """Fetch the page after `cursor` in a thread of its own (in this job's context: org scope, log fields)."""
    future: Future[Page] = Future()
    context = contextvars.copy_context()

    def fetch() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(context.run(_fetch, rt, connection, stream, cursor))
            except BaseException as exc:  # handed to the job, which handles it as its own fetch's
                future.set_exception(exc)

    threading.Thread(target=fetch, name=f"read-ahead-{connection.id}-{stream}", daemon=True).start()
    return future


def _state(session: Session, connection_id: int, stream: str) -> SyncState | None:
    """The stream's sync state row."""
    return session.execute(
        select(SyncState).where(SyncState.connection_id == connection_id, SyncState.stream == stream)
    ).scalar_one_or_none()


def _count_crash(
    session: Session, state_id: int, owner: str, version: int
) -> Literal["counted", "parked", "lost_lease"]:
    """Count this job as a possible crash of its page (committed before the fetch); park a poison page.

    The count is per cursor version: a count left by an older version starts again at 1. When
    MAX_CRASHES jobs at this version already died without clearing it, this one does not fetch.
    """
    same = SyncState.crash_version == version
    result = session.execute(
        update(SyncState)
        .where(
            SyncState.id == state_id,
            SyncState.lease_owner == owner,
            or_(SyncState.crash_version.is_(None), ~same, SyncState.crash_count < MAX_CRASHES),
        )
        .values(crash_count=case((same, SyncState.crash_count + 1), else_=1), crash_version=version)
    )
    if getattr(result, "rowcount", 0) == 1:
        return "counted"
    result = session.execute(
        update(SyncState)
        .where(SyncState.id == state_id, SyncState.lease_owner == owner)
        .values(
            running=False,
            failed=True,
            last_error=PARKED_ERROR,
            lease_owner=None,
            lease_until=None,
            next_run_at=None,
        )
    )
    return "parked" if getattr(result, "rowcount", 0) == 1 else "lost_lease"


def _clear_crashes(rt: Runtime, state_id: int, version: int) -> None:
    """The job ended without killing its worker: its page is no poison (a failure here is only logged)."""
    try:
        with rt.writes.begin() as session:
            session.execute(
                update(SyncState)
                .where(SyncState.id == state_id, SyncState.crash_version == version, SyncState.crash_count > 0)
                .values(crash_count=0, crash_version=None)
            )
    except Exception:  # never hide the job's own outcome or exception behind this bookkeeping
        log.warning("could not clear the crash count", extra={"state": state_id}, exc_info=True)


def _retry_after_lease(rt: Runtime, state: SyncState) -> None:
    """Another worker holds the page: look again once its lease would have run out (it may have died)."""
    remaining = (state.lease_until - rt.clock()).total_seconds() if state.lease_until else 0.0
    rt.send(state.connection_id, state.stream, state.version, max(1.0, remaining) + random.uniform(0, 2))


def _keep_chain_going(rt: Runtime, state: SyncState) -> None:
    """A duplicate or late message: re-enqueue the current page only if nobody did (a crash after commit)."""
    if state.running and state.enqueued_version < state.version:
        _send_next(rt, state.connection_id, state.stream, state.version)


def acquire_lease(rt: Runtime, state_id: int, version: int, owner: str) -> bool:
    """Take the stream's lease unless a live worker holds it (at most one worker per stream)."""
    with rt.writes.begin() as session:
        return _take_lease(session, rt, state_id, version, owner)


def _take_lease(session: Session, rt: Runtime, state_id: int, version: int, owner: str) -> bool:
    """`acquire_lease` inside the caller's transaction."""
    now = rt.clock()
    result = session.execute(
        update(SyncState)
        .where(
            SyncState.id == state_id,
            SyncState.version == version,
            or_(SyncState.lease_owner.is_(None), SyncState.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=rt.settings.lease_seconds), running=True)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def _fetch(rt: Runtime, connection: Connection, stream: str, cursor: JSON | None) -> Page:
    """Ask the connector for the page after `cursor`, refreshing the token once on a 401."""
    connector = get_connector(connection.source)
    token = get_access_token(
        rt.writes, connection.id, client_for=rt.oauth_client, vault=rt.vault, now=rt.clock(), reads=rt.sessions
    )
    try:
        return connector.fetch_page(stream, cursor, _context(rt, connection, token.token))
    except Unauthorized:
        token = get_access_token(
            rt.writes,
            connection.id,
            client_for=rt.oauth_client,
            vault=rt.vault,
            stale_version=token.version,
            now=rt.clock(),
        )
        return connector.fetch_page(stream, cursor, _context(rt, connection, token.token))


def _context(rt: Runtime, connection: Connection, access_token: str) -> FetchContext:
    """The connector's view of one fetch: token, endpoints, account, window."""
    provider = rt.settings.provider(connection.provider)
    extra = {k: str(v) for k, v in connection.extra.items()}
    return FetchContext(
        access_token=access_token,
        endpoints=Endpoints(
            api_url=extra.get("instance_url") or provider.api_url,
            ca_bundle=rt.settings.ca_bundle or None,
            timeout=rt.settings.http_timeout,
        ),
        account=connection.account,
        now=rt.clock(),
        backfill_days=rt.settings.backfill_days,
        page_size=rt.settings.page_size,
        extra=extra,
        quota=quota_for(rt, connection.provider, connection.account),
    )


def _commit(
    rt: Runtime, connection: Connection, state: SyncState, owner: str, page: Page, *, keep_lease: bool = False
) -> Outcome:
    """Records and the next cursor in one transaction, guarded by version and lease.

    `keep_lease`: this job goes on with the next page (read ahead), so the lease is renewed for it and the
    job counts itself as in flight there (as `_count_crash` would), and nothing is enqueued.
    """
    now = rt.clock()
    secret = rt.suppression_secret()  # before the transaction: it may have to create the secret
    with rt.writes.begin() as session:
        org = session.get_one(Org, connection.org_id)
        target = target_for(
            session,
            org,
            connection_id=connection.id,
            stream=state.stream,
            generation=state.generation,
            suppression_secret=secret,
        )
        stats = ingest_page(session, target, page.observations, page.rejections, now)
        if page.done and page.full_resync:
            swept = sweep_unseen(session, target, now)
            stats.deleted += swept.deleted
            stats.contacts_published += swept.contacts_published
        values: dict[str, Any] = {
            "version": state.version + 1,
            "cursor": page.cursor,
            "attempts": 0,
            "failed": False,
            "last_error": None,
            "crash_count": 0,
            "crash_version": None,
            "records_total": SyncState.records_total + stats.new + stats.changed + stats.deleted,
            "api_calls_total": SyncState.api_calls_total + page.api_calls,
            "pages_total": SyncState.pages_total + 1,
            "throttled_total": SyncState.throttled_total + (1 if page.retry_after > 0 else 0),
        } | _progress(state, page, now)
        if page.done:
            values |= {
                "running": False,
                "lease_owner": None,
                "lease_until": None,
                "last_success_at": now,
                "next_run_at": now + timedelta(seconds=rt.settings.poll_seconds),
                "in_full_pass": False,
                "enqueued_version": state.version + 1,
            }
        elif keep_lease:
            lease_until = now + timedelta(seconds=rt.settings.lease_seconds)
            values |= {"lease_until": lease_until, "crash_count": 1, "crash_version": state.version + 1}
        else:
            values |= {"lease_owner": None, "lease_until": None}
        result = session.execute(
            update(SyncState)
            .where(SyncState.id == state.id, SyncState.version == state.version, SyncState.lease_owner == owner)
            .values(**values)
        )
        if getattr(result, "rowcount", 0) != 1:
            session.rollback()
            return Outcome("lost_lease", state.version)
    failpoint("after_commit", connection.id)
    version = state.version + 1
    log.info(
        "page stored",
        extra={
            "connection": connection.id,
            "stream": state.stream,
            "version": version,
            "new": stats.new,
            "changed": stats.changed,
            "deleted": stats.deleted,
            "rejected": stats.rejected,
            "api_calls": page.api_calls,
            "done": page.done,
        },
    )
    if page.done:
        failpoint("after_checkpoint", connection.id)
        return Outcome("done", version, stats, page.api_calls)
    if not keep_lease:
        _send_next(rt, connection.id, state.stream, version, page.retry_after)
    failpoint("after_checkpoint", connection.id)
    return Outcome("committed", version, stats, page.api_calls)


def _progress(state: SyncState, page: Page, now: datetime) -> dict[str, Any]:
    """Checkpoint progress: a page that read nothing and left the cursor as it was is idle (the chain is alive,
    its stored page still counts for the reconciler, but `idle_pages` grows and stall detection sees a loop)."""
    read = len(page.observations) + len(page.rejections)
    values: dict[str, Any] = {}
    if state.in_full_pass and page.progress is not None:
        values["backfill_progress"] = max(0.0, min(1.0, page.progress))
    values["last_progress_at"] = now
    if read or page.done or page.cursor != state.cursor:
        return values | {"idle_pages": 0}
    return values | {"idle_pages": SyncState.idle_pages + 1}


def _send_next(rt: Runtime, connection_id: int, stream: str, version: int, delay: float = 0.0) -> None:
    """Enqueue the page at `version` (after `delay` seconds) and remember that we did."""
    rt.send(connection_id, stream, version, delay)
    with rt.writes.begin() as session:
        session.execute(
            update(SyncState)
            .where(
                SyncState.connection_id == connection_id,
                SyncState.stream == stream,
                SyncState.enqueued_version < version,
            )
            .values(enqueued_version=version)
        )


def new_pass_values() -> dict[str, Any]:
    """The columns that start a stream's new full pass: no cursor, a new generation, progress from zero."""
    return {
        "cursor": None,
        "generation": SyncState.generation + 1,
        "in_full_pass": True,
        "backfill_progress": None,
    }


def _restart_full_pass(rt: Runtime, state_id: int, owner: str, version: int, why: str) -> int | None:
    """An expired cursor: start a new full pass (new generation); its end sweeps what it did not see."""
    with rt.writes.begin() as session:
        result = session.execute(
            update(SyncState)
            .where(SyncState.id == state_id, SyncState.version == version, SyncState.lease_owner == owner)
            .values(
                version=version + 1,
                **new_pass_values(),
                lease_owner=None,
                lease_until=None,
                last_error=f"cursor expired, full resync: {why}"[:500],
                last_progress_at=rt.clock(),
            )
        )
        return version + 1 if getattr(result, "rowcount", 0) == 1 else None


def _hold(rt: Runtime, state_id: int, owner: str, delay: float, why: str) -> None:
    """Release the lease but keep the reconciler off until the provider's Retry-After has passed."""
    with rt.writes.begin() as session:
        session.execute(
            update(SyncState)
            .where(SyncState.id == state_id, SyncState.lease_owner == owner)
            .values(
                lease_owner=None,
                lease_until=rt.clock() + timedelta(seconds=delay),
                last_error=why[:500],
                throttled_total=SyncState.throttled_total + 1,
            )
        )


def _stop_chain(rt: Runtime, state_id: int, *, error: str | None) -> None:
    """The connection cannot sync now (paused, revoked, needs reauth): the chain ends here."""
    with rt.writes.begin() as session:
        values: dict[str, Any] = {"running": False, "lease_owner": None, "lease_until": None}
        if error:
            values["last_error"] = error
        session.execute(update(SyncState).where(SyncState.id == state_id).values(**values))


def _record_failure(rt: Runtime, state_id: int, owner: str, exc: BaseException) -> None:
    """Count the attempt and keep a redacted reason; after MAX_ATTEMPTS the stream is failed."""
    reason = f"{type(exc).__name__}: {exc}"[:500] if isinstance(exc, ConnectorError) else type(exc).__name__
    with rt.writes.begin() as session:
        state = session.get_one(SyncState, state_id)
        attempts = state.attempts + 1
        failed = attempts >= MAX_ATTEMPTS
        session.execute(
            update(SyncState)
            .where(SyncState.id == state_id, SyncState.lease_owner == owner)
            .values(
                attempts=attempts,
                failed=failed,
                last_error=reason,
                lease_owner=None,
                lease_until=None,
                running=not failed,
            )
        )
    log.warning("page failed", extra={"state": state_id, "attempt": attempts, "error": reason})
