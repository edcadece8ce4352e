"""S1, S2 (issue 7): the single-flight token refresh under real processes, kills and each provider's rotation.

S1: 16 callers (4 processes x 4 threads, tests/faults/token_callers.py) ask for one expired Microsoft
token at the same instant, through the three Outlook connections that share its grant. The emulator
rotates strictly (`old_refresh_token_uses=0`): any second use of a refresh token answers invalid_grant,
so a double refresh cannot hide. In some trials the caller holding the credential's row lock is
SIGKILLed before its token call; the others must still get the token, refreshed once, by one of them.
On PostgreSQL every other such trial freezes the holder (SIGSTOP) instead: the waiters must give up
after their `lock_wait` with a retryable RefreshFailed (they used to wait for ever), and the holder,
resumed, finishes its one refresh.
In every other trial the new token lives 30 s, less than the 60 s margin callers ask for: the callers
that waited for the lock must take it all the same (they used to refresh again, one call each).

S2: each provider's token mode, refreshed in turn (the stored refresh token is always the provider's
newest, never empty), then a refresh whose answer is lost: a real process killed by the failpoint
`after_token_response` between the answer and the commit. Where the old refresh token still works
(Google returns none on refresh, Microsoft's default keeps the old valid, HubSpot's never changes) the
sync that follows refreshes once more and completes; where rotation killed it (Salesforce, Microsoft
strict) the one extra call gets invalid_grant, the grant is `reauth_required`, and nothing calls again.
"""

from __future__ import annotations

import statistics
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models.rls import org_scope
from models.tables import AuditEvent, Connection, Credential, SyncState, utcnow
from sandbox.server import Sandbox
from sandbox.world import generate_world
from sync.inprocess import worker_threads
from sync.scheduler import reconcile
from tests.faults.conftest import DOMAIN, LONG, MEMBERS, ORG, Scenario
from tests.faults.harness import expire_access_tokens, settings_env
from tests.faults.token_callers import CallerPool, Kill, Outcome, Trial, TrialResult, token_digest
from tokens.access import LOCK_WAIT_SECONDS, ReauthRequired, get_access_token
from web.stack import Stack, running_stack

pytestmark = pytest.mark.faults

MEMBER = MEMBERS[0]
PROCESSES, THREADS = 4, 4
S1_TRIALS = 200 if LONG else 12
S1_SQLITE_TRIALS = 40 if LONG else 6
KILL_EVERY = 10 if LONG else 6  # the lock holder dies in every KILL_EVERY-th trial
S2_ROUNDS = 10 if LONG else 3
TOKEN_LATENCY_MS = 50  # the emulator's answer takes this long: the holder keeps the lock while the rest pile up
LONG_TTL, SHORT_TTL = 3599, 30  # odd trials: the new token lives shorter than get_access_token's 60 s margin
FROZEN_LOCK_WAIT = 1.0  # seconds the callers of a trial with a frozen holder wait for the lock


def _stack(tmp_path: Path, database_url: str) -> AbstractContextManager[Stack]:
    """A small one-member world; no worker threads until a test starts some."""
    world = generate_world(seed=29, size=30, org_domain=DOMAIN, members=(MEMBER,))
    return running_stack(data_dir=tmp_path / "run", world=world, database_url=database_url, workers=0)


def _grant(stack: Stack, provider: str) -> tuple[int, tuple[int, ...]]:
    """Connect the member to `provider` through the real consent flow: (org id, its connections)."""
    stack.seed_org(ORG, DOMAIN, (MEMBER,))
    stack.connect(ORG, MEMBER, provider)
    with stack.rt.sessions() as session:
        rows = session.execute(
            select(Connection.org_id, Connection.id).where(Connection.provider == provider).order_by(Connection.id)
        ).all()
    return rows[0][0], tuple(row[1] for row in rows)


def _credential(stack: Stack) -> Credential:
    """The grant's credential row as stored now (each test has one grant)."""
    with stack.rt.sessions() as session:
        return session.execute(select(Credential)).scalar_one()


def _stored_refresh_token(stack: Stack) -> str:
    """The stored refresh token, decrypted; failing the test if it is gone or empty."""
    credential = _credential(stack)
    assert credential.refresh_token is not None, "the stored refresh token is gone"
    token = stack.rt.vault.decrypt(credential.refresh_token)
    assert token, "the stored refresh token is empty"
    return token


def _audits(stack: Stack, action: str) -> int:
    """How many audit events of one action the store holds."""
    with stack.rt.sessions() as session:
        return session.execute(select(func.count()).where(AuditEvent.action == action)).scalar_one()


def _rotated_flags(stack: Stack) -> list[bool]:
    """The `rotated` flag of every audited refresh, oldest first."""
    with stack.rt.sessions() as session:
        events = session.execute(
            select(AuditEvent).where(AuditEvent.action == "token.refresh").order_by(AuditEvent.id)
        ).scalars()
        return [bool(event.details["rotated"]) for event in events]


def _ask(stack: Stack, org_id: int, connection_id: int, **kwargs: Any) -> int:
    """Ask for the access token in this process, the way a page job does; the credential version it got."""
    with org_scope(org_id):
        token = get_access_token(
            stack.rt.writes, connection_id, client_for=stack.rt.oauth_client, vault=stack.rt.vault, **kwargs
        )
    return token.version


def refresh_calls(sandbox: Sandbox, provider: str) -> int:
    """The refresh_token grants the provider's emulator has answered, counted there."""
    if provider == "google":
        return sandbox.google.token_calls["refresh_token"]
    if provider == "microsoft":
        return sandbox.microsoft.stats.calls["token:refresh_token"]
    if provider == "salesforce":
        return sandbox.salesforce.auth.calls["refresh_token"]
    return sandbox.hubspot.stats.calls["token"]  # one kind for both grants: after the consent, refreshes


def newest_refresh_token(sandbox: Sandbox, provider: str) -> str:
    """The refresh token the emulator issued last for the (only) grant."""
    if provider == "google":
        (grant,) = sandbox.google.grants.values()
        (token,) = grant.refresh_tokens  # Google issues one per consent and none on refresh
        return token
    if provider == "microsoft":
        (ms_grant,) = sandbox.microsoft.identity.grants.values()
        return list(ms_grant.refresh)[-1]  # issue order
    if provider == "salesforce":
        (sf_grant,) = sandbox.salesforce.auth.grants.values()
        (token,) = sf_grant.refresh_tokens  # rotation drops the old one; without it there is only one
        return token
    (hs_grant,) = sandbox.hubspot.auth.grants.values()
    return hs_grant.refresh_token


# -- S1 -------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """S1's figures over all trials, and what each broken trial broke."""

    trials: int = 0
    kills: int = 0
    freezes: int = 0
    lock_timeouts: int = 0
    calls: int = 0
    invalid_grant: int = 0
    answered: int = 0
    overlap: list[int] = field(default_factory=list)  # callers in flight when the first one had its answer
    broken: list[str] = field(default_factory=list)


def _kill(number: int, *, freezes: bool) -> Kill:
    """Which trials lose their lock holder, and how: killed, or (PostgreSQL) frozen every other time."""
    if number % KILL_EVERY != KILL_EVERY - 1:
        return "none"
    return "freeze_before_call" if freezes and (number // KILL_EVERY) % 2 else "before_call"


def _lock_timeout(outcome: Outcome) -> bool:
    """The caller gave up waiting for another's refresh (tokens.access.RefreshFailed, error lock_timeout)."""
    return bool(outcome.error and outcome.error.startswith("RefreshFailed") and "held the lock" in outcome.error)


def _check_trial(stack: Stack, number: int, kill: Kill, result: TrialResult, calls: int, version: int) -> list[str]:
    """What one trial broke: one refresh at the emulator, one lock holder dead if asked, every other caller served."""
    broken = []
    expected_dead = 1 if kill in ("before_call", "after_response") else 0
    if len(result.killed) != expected_dead:
        broken.append(f"{len(result.killed)} processes died, expected {expected_dead}")
    if result.holder_held_the_lock is not (True if kill in ("before_call", "freeze_before_call") else None):
        broken.append(f"the killed or frozen caller held the credential's lock: {result.holder_held_the_lock}")
    if calls != 1:
        broken.append(f"{calls} token calls")
    if len(result.outcomes) != THREADS * (PROCESSES - len(result.killed)):
        broken.append(f"{len(result.outcomes)} answers from {PROCESSES - len(result.killed)} live processes")
    if kill == "freeze_before_call":  # the frozen holder finishes its refresh; everyone else gave up, retryably
        served = {o.process for o in result.outcomes if not o.error}
        if served != set(result.frozen):
            broken.append(f"served in processes {served} while the holder in {result.frozen} was frozen")
        if not all(_lock_timeout(o) for o in result.outcomes if o.error):
            broken.append(f"errors: {[o.error for o in result.outcomes if o.error and not _lock_timeout(o)][:2]}")
        if sum(1 for o in result.outcomes if _lock_timeout(o)) < THREADS * (PROCESSES - 1):
            broken.append("a caller in another process did not give up waiting")
    elif any(o.error for o in result.outcomes):
        broken.append(f"errors: {[o.error for o in result.outcomes if o.error][:2]}")
    credential = _credential(stack)
    digest = token_digest(stack.rt.vault.decrypt(credential.access_token))
    answers = {(o.version, o.token_sha) for o in result.outcomes if not o.error}
    if credential.version != version + 1 or answers - {(credential.version, digest)}:
        broken.append(f"stored v{credential.version} after v{version}; answers {sorted(answers, key=str)[:3]}")
    if _stored_refresh_token(stack) != newest_refresh_token(stack.sandbox, "microsoft"):
        broken.append("the stored refresh token is not the newest")
    return [f"trial {number} ({kill}): {b}" for b in broken]


def _races(stack: Stack, tmp_path: Path, trials: int, *, freezes: bool) -> Tally:
    """Run the trials against the Microsoft grant; every trial starts from an expired access token."""
    org_id, connections = _grant(stack, "microsoft")
    microsoft = stack.sandbox.microsoft
    microsoft.configure(old_refresh_token_uses=0)
    microsoft.faults.configure({"latency_ms": TOKEN_LATENCY_MS})
    tally = Tally()
    with CallerPool(settings_env(stack.rt.settings), tmp_path / "callers", PROCESSES, THREADS) as pool:
        for number in range(trials):
            kill = _kill(number, freezes=freezes)
            microsoft.configure(access_token_ttl=SHORT_TTL if number % 2 else LONG_TTL)
            expire_access_tokens(stack)
            version = _credential(stack).version
            calls, rejected = refresh_calls(stack.sandbox, "microsoft"), microsoft.stats.statuses[400]
            lock_wait = FROZEN_LOCK_WAIT if kill == "freeze_before_call" else LOCK_WAIT_SECONDS
            result = pool.run(Trial(org_id, connections, kill, lock_wait))
            calls = refresh_calls(stack.sandbox, "microsoft") - calls
            tally.trials += 1
            tally.kills += len(result.killed)
            tally.freezes += len(result.frozen)
            tally.lock_timeouts += sum(1 for o in result.outcomes if _lock_timeout(o))
            tally.calls += calls
            tally.invalid_grant += microsoft.stats.statuses[400] - rejected
            tally.answered += sum(1 for o in result.outcomes if not o.error)
            first_done = min((o.ended for o in result.outcomes), default=0.0)
            tally.overlap.append(sum(1 for o in result.outcomes if o.started < first_done))
            tally.broken += _check_trial(stack, number, kill, result, calls, version)
    with stack.rt.sessions() as session:
        statuses = set(session.execute(select(Connection.status)).scalars())
    if statuses != {"active"}:
        tally.broken.append(f"connection statuses {statuses}")
    if _audits(stack, "token.refresh") != trials or _audits(stack, "token.refresh_failed"):
        tally.broken.append("the audit trail does not show exactly one saved refresh per trial")
    return tally


def _report(scenario: Scenario, tally: Tally, started: float) -> None:
    scenario.figures |= {
        "trials": tally.trials,
        "holder_kills": tally.kills,
        "holder_freezes": tally.freezes,
        "lock_timeouts": tally.lock_timeouts,
        "token_calls": tally.calls,
        "calls_per_trial": round(tally.calls / max(1, tally.trials), 3),
        "invalid_grant": tally.invalid_grant,
        "answers": tally.answered,
        "in_flight_at_first_answer": round(statistics.mean(tally.overlap), 1) if tally.overlap else 0,
        "broken_trials": len({line.split(":")[0] for line in tally.broken if line.startswith("trial ")}),
        "seconds": round(time.monotonic() - started, 1),
    }


def _expect_clean(tally: Tally, trials: int, *, freezes: bool) -> None:
    assert tally.broken == [], "\n".join(tally.broken[:10])
    assert tally.trials == trials and tally.calls == trials, "exactly one token call per trial"
    assert tally.invalid_grant == 0
    schedule = [_kill(number, freezes=freezes) for number in range(trials)]
    assert (tally.kills, tally.freezes) == (schedule.count("before_call"), schedule.count("freeze_before_call"))


def test_s1_sixteen_callers_in_four_processes_refresh_an_expired_token_once_even_when_the_holder_dies(
    tmp_path: Path, pg_url: str, scenario: Scenario
) -> None:
    scenario.name = f"S1 {PROCESSES}x{THREADS} callers x {S1_TRIALS} trials, PostgreSQL (FOR UPDATE)"
    started = time.monotonic()
    with _stack(tmp_path, pg_url) as stack:
        tally = _races(stack, tmp_path, S1_TRIALS, freezes=True)
    _report(scenario, tally, started)
    _expect_clean(tally, S1_TRIALS, freezes=True)


def test_s1_on_sqlite_the_immediate_write_lock_is_the_single_flight_even_when_the_holder_dies(
    tmp_path: Path, sqlite_url: str, scenario: Scenario
) -> None:
    scenario.name = f"S1 {PROCESSES}x{THREADS} callers x {S1_SQLITE_TRIALS} trials, SQLite (BEGIN IMMEDIATE)"
    started = time.monotonic()
    with _stack(tmp_path, sqlite_url) as stack:
        tally = _races(stack, tmp_path, S1_SQLITE_TRIALS, freezes=False)  # waiters: the 60 s busy timeout
    _report(scenario, tally, started)
    _expect_clean(tally, S1_SQLITE_TRIALS, freezes=False)


# -- S2 -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenMode:
    """One provider's refresh-token behaviour, and whether the token stored before a lost answer still works."""

    provider: str
    knobs: dict[str, Any]
    old_survives: bool


MODES = {
    "google: no refresh token on refresh": TokenMode("google", {"return_refresh_token_on_refresh": False}, True),
    "microsoft: rotation, the old stays valid": TokenMode("microsoft", {"old_refresh_token_uses": None}, True),
    "microsoft strict: rotation kills the old": TokenMode("microsoft", {"old_refresh_token_uses": 0}, False),
    "salesforce: rotation kills the old": TokenMode("salesforce", {"rotate_refresh_tokens": True}, False),
    "hubspot: one refresh token for ever": TokenMode("hubspot", {}, True),
}


@pytest.mark.parametrize("label", list(MODES))
def test_s2_the_stored_refresh_token_is_the_newest_and_a_lost_answer_costs_at_most_one_call(
    label: str, tmp_path: Path, pg_url: str, scenario: Scenario
) -> None:
    mode = MODES[label]
    provider = mode.provider
    scenario.name = f"S2 {label}"
    started = time.monotonic()
    with _stack(tmp_path, pg_url) as stack:
        sandbox = stack.sandbox
        org_id, connections = _grant(stack, provider)
        getattr(sandbox, provider).configure(**mode.knobs)  # each emulator's knobs (an unknown one raises)
        issued = [_stored_refresh_token(stack)]
        assert issued[0] == newest_refresh_token(sandbox, provider)

        # refreshes that are saved: the stored refresh token follows the provider's newest, never empty
        for round_ in range(S2_ROUNDS):
            expire_access_tokens(stack)
            calls, version = refresh_calls(sandbox, provider), _credential(stack).version
            assert _ask(stack, org_id, connections[round_ % len(connections)]) == version + 1
            assert refresh_calls(sandbox, provider) == calls + 1
            issued.append(_stored_refresh_token(stack))
            assert issued[-1] == newest_refresh_token(sandbox, provider), f"round {round_}: not the newest"
        rotations = len(set(issued)) - 1
        scenario.figures |= {"refreshes": S2_ROUNDS, "rotations": rotations}
        if provider in ("google", "hubspot"):
            assert rotations == 0
        else:
            assert rotations == S2_ROUNDS
        assert _rotated_flags(stack) == [rotations > 0] * S2_ROUNDS, "the audit trail says which refresh rotated"

        # a refresh whose answer is lost: the process dies between the provider's answer and the commit
        expire_access_tokens(stack)
        before = _credential(stack)
        calls = refresh_calls(sandbox, provider)
        with CallerPool(settings_env(stack.rt.settings), tmp_path / "crash", processes=1, threads=1) as pool:
            crash = pool.run(Trial(org_id, connections[:1], "after_response"))
        assert crash.killed == [0] and not crash.outcomes
        assert refresh_calls(sandbox, provider) == calls + 1, "the killed caller's refresh reached the provider"
        after = _credential(stack)
        assert (after.version, after.refresh_token, after.access_token) == (
            before.version, before.refresh_token, before.access_token,
        ), "nothing of the lost answer was saved"
        lost_rotation = newest_refresh_token(sandbox, provider) != _stored_refresh_token(stack)
        assert lost_rotation == (provider in ("microsoft", "salesforce"))

        # the sync that follows
        calls = refresh_calls(sandbox, provider)
        with worker_threads(stack.broker, 2):
            final = stack.sync(timeout=90)  # returns once no chain of an active connection runs
            for queue in stack.broker.get_declared_queues():
                stack.broker.join(queue, timeout=30_000)  # the jobs still queued for a dead grant end too
            extra = refresh_calls(sandbox, provider) - calls
            scenario.figures |= {"calls_after_crash": extra, "failed": final.failed}
            with stack.rt.sessions() as session:
                statuses = set(session.execute(select(Connection.status)).scalars())
                streams = list(session.execute(select(SyncState)).scalars())
            scenario.figures["status"] = ",".join(sorted(statuses))
            if mode.old_survives:
                assert extra == 1, "one refresh with the kept token, shared by every stream"
                assert (final.running, final.failed) == (0, 0)
                assert statuses == {"active"}
                assert all(s.last_success_at is not None and s.last_error is None for s in streams)
                assert _stored_refresh_token(stack) == newest_refresh_token(sandbox, provider)
                assert _credential(stack).version == before.version + 1
            else:
                assert extra == 1, "exactly one call learns that the grant is dead"
                assert statuses == {"reauth_required"}
                assert final.running == 0 and final.failed == len(streams)
                assert not any(s.running for s in streams)
                assert _audits(stack, "token.refresh_failed") == 1
                # no loop: another sync round, the reconciler and a direct ask call nobody
                again = stack.sync(timeout=30)
                reconcile(stack.rt, stack.rt.clock())
                with pytest.raises(ReauthRequired):
                    _ask(stack, org_id, connections[0])
                assert again.running == 0
                assert refresh_calls(sandbox, provider) - calls == 1, "a dead grant was asked again"
                assert _stored_refresh_token(stack) == issued[-1], "the stored refresh token is kept for the record"
    scenario.figures["seconds"] = round(time.monotonic() - started, 1)


def test_a_token_that_lives_shorter_than_the_margin_is_used_until_half_its_life_not_refreshed_per_caller(
    tmp_path: Path, sqlite_url: str
) -> None:
    with _stack(tmp_path, sqlite_url) as stack:
        org_id, connections = _grant(stack, "microsoft")
        stack.sandbox.microsoft.configure(access_token_ttl=SHORT_TTL)
        expire_access_tokens(stack)

        def ask(**kwargs: Any) -> int:
            return _ask(stack, org_id, connections[0], **kwargs)

        calls = refresh_calls(stack.sandbox, "microsoft")
        fresh = ask()
        assert [ask(), ask(), ask()] == [fresh] * 3  # 30 s left, under min_ttl (60 s): still the saved token
        assert refresh_calls(stack.sandbox, "microsoft") == calls + 1
        later = utcnow() + timedelta(seconds=SHORT_TTL / 2 + 1)  # past half its life: refresh before use
        assert ask(now=later) == fresh + 1
        assert ask(stale_version=fresh + 1) == fresh + 2  # a 401 still forces one
        assert refresh_calls(stack.sandbox, "microsoft") == calls + 3
