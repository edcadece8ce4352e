"""Opted-out people are dropped from a page before anything of theirs is stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy.orm import Session

from connectors.base import ActivityObservation, InvalidValue, Observation, PersonObservation
from connectors.phones import normalize_phone
from models.suppression import suppressed
from sync.identity import email_key, phone_key


def _phone_keys(obs: PersonObservation, region: str) -> list[str]:
    """The record's phones as keys (unparseable ones cannot match an opt-out anyway)."""
    keys = []
    for raw in obs.phones:
        try:
            keys.append(phone_key(normalize_phone(raw, region)))
        except InvalidValue:
            continue
    return keys


def drop_suppressed(
    session: Session, observations: Sequence[Observation], secret: bytes, region: str
) -> list[Observation]:
    """The page without opted-out participants and without records that name an opted-out identity."""
    candidates: set[str] = set()
    for obs in observations:
        if isinstance(obs, ActivityObservation):
            candidates.update(email_key(p.email) for p in obs.participants if p.email)
        elif isinstance(obs, PersonObservation):
            candidates.update(email_key(e) for e in obs.emails)
            candidates.update(_phone_keys(obs, region))
    blocked = suppressed(session, candidates, secret) if candidates else set()
    if not blocked:
        return list(observations)
    kept: list[Observation] = []
    for obs in observations:
        if isinstance(obs, ActivityObservation):
            people = tuple(p for p in obs.participants if not p.email or email_key(p.email) not in blocked)
            kept.append(obs if len(people) == len(obs.participants) else replace(obs, participants=people))
        elif isinstance(obs, PersonObservation):
            keys = {email_key(e) for e in obs.emails} | set(_phone_keys(obs, region))
            if not keys & blocked:
                kept.append(obs)
        else:
            kept.append(obs)
    return kept
