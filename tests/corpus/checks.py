"""The B1 pass criteria as reusable checks: no exception, a per-record hang guard, reasoned rejections, idempotence.

Shared by the curated corpus (test_corpus.py) and the generated payloads (test_generated.py).
"""

from __future__ import annotations

import copy
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from types import FrameType
from typing import Any

from connectors.addresses import display_name
from connectors.base import ActivityObservation, PersonObservation
from connectors.emails import normalize_email
from connectors.gmail_mapping import dedupe_key as gmail_dedupe_key
from connectors.hubspot_mapping import message_id as hubspot_message_id
from connectors.phones import normalize_phone
from tests.corpus.sources import MAPPERS, Context, Outcome

# CPU seconds one record may take before it counts as a hang. Records map in well under 10 ms; the guard
# only has to tell "finished" from "looping", so it is generous and counts CPU time, which a loaded
# machine does not inflate. SIGPROF, not SIGALRM: pytest-timeout owns the real-time alarm.
HANG_CPU_SECONDS = 5.0
REASON_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")  # rejected.reason is String(40)


class Hang(Exception):
    """A record's mapping ran past the hang guard."""


@contextmanager
def hang_guard(what: str, seconds: float = HANG_CPU_SECONDS) -> Iterator[None]:
    """Raise Hang inside the block once it has used `seconds` of CPU time."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"{what}: still mapping after {seconds} CPU seconds")

    previous = signal.signal(signal.SIGPROF, expired)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def map_bounded(source: str, record: Any, context: Context, what: str) -> Outcome:
    """Map one record under the hang guard; the input must come out unchanged."""
    before = copy.deepcopy(record)
    with hang_guard(what):
        outcome = MAPPERS[source](record, context)
    assert record == before, f"{what}: the mapper changed its input"
    return outcome


def map_page(source: str, records: list[Any], context: Context, what: str) -> Outcome:
    """A page of records, each under its own guard, gathered as the connector gathers them."""
    outcomes = [map_bounded(source, r, context, f"{what}[{i}]") for i, r in enumerate(records)]
    return Outcome(
        tuple(o for out in outcomes for o in out.observations),
        tuple(r for out in outcomes for r in out.rejections),
        tuple(p for out in outcomes for p in out.phones),
    )


def check_rejections(source: str, outcome: Outcome, what: str) -> None:
    """Every rejection names its source and a short machine reason code the store can keep."""
    for rejection in outcome.rejections:
        assert rejection.source == source, f"{what}: rejection from {rejection.source!r}"
        assert REASON_CODE.fullmatch(rejection.reason), f"{what}: reason {rejection.reason!r} is not a code"
        assert isinstance(rejection.external_id, str) and isinstance(rejection.detail, str)


def check_normal_forms(outcome: Outcome, what: str) -> None:
    """Normalizing the normalized output again changes nothing (addresses, names, keys, times, phones)."""
    for obs in outcome.observations:
        if isinstance(obs, ActivityObservation):
            assert obs.occurred_at.utcoffset() is not None and obs.occurred_at.astimezone(UTC) == obs.occurred_at
            assert obs.occurred_at.utcoffset().total_seconds() == 0, f"{what}: occurred_at not in UTC"  # type: ignore[union-attr]
            for p in obs.participants:
                assert p.email or p.person_ref, f"{what}: a participant with neither address nor reference"
                if p.email:
                    assert normalize_email(p.email) == p.email, f"{what}: {p.email!r} is not in normal form"
                    if obs.source in ("gmail", "outlook_mail", "outlook_calendar") and p.name is not None:
                        assert display_name(p.name, p.email) == p.name, f"{what}: name {p.name!r} not stable"
            assert obs.dedupe_key and obs.dedupe_key == obs.dedupe_key.strip(), f"{what}: bad key {obs.dedupe_key!r}"
            if obs.source in ("gmail", "outlook_mail") or obs.kind in ("crm_email", "crm_email_in"):
                key = obs.dedupe_key
                assert gmail_dedupe_key({"message-id": [key]}) == key, f"{what}: Message-ID key {key!r} not stable"
                assert hubspot_message_id(key) == key, f"{what}: HubSpot reads key {key!r} differently"
        elif isinstance(obs, PersonObservation):
            for address in obs.emails:
                assert normalize_email(address) == address, f"{what}: {address!r} is not in normal form"
            assert len(set(obs.emails)) == len(obs.emails), f"{what}: an address twice on one person"
    for _, phones in outcome.phones:
        for phone in phones:
            assert normalize_phone(phone, "US") == phone, f"{what}: {phone!r} is not stable E.164"


def check_outcome(source: str, outcome: Outcome, what: str, *, skipped: bool = False) -> None:
    """A record maps to observations, or to at least one reasoned rejection, or is a documented skip."""
    check_rejections(source, outcome, what)
    check_normal_forms(outcome, what)
    if not outcome.observations and not skipped:
        assert outcome.rejections, f"{what}: the record vanished without an observation or a rejection"
