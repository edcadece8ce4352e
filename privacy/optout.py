"""Opt-out: suppress an identity everywhere (kept only as a keyed hash) and erase what is held about it."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import InvalidValue
from connectors.emails import normalize_email
from connectors.phones import normalize_phone
from models.rls import cross_org
from models.suppression import suppress, suppression_hash
from models.tables import AuditEvent
from privacy.purge import orgs_of, purge_identity
from sync.identity import email_key, phone_key
from sync.runtime import Runtime


class NotAnIdentity(ValueError):
    """Neither an email address nor a phone number."""


@dataclass(frozen=True)
class OptOut:
    """What an opt-out did; `reference` is the hash prefix the audit log keeps (never the address)."""

    reference: str
    orgs: int
    erased: int


def identity_key(raw: str, region: str = "US") -> str:
    """The normalized key of an address or a phone number; a clear error otherwise."""
    text = raw.strip()
    if "@" in text:
        try:
            return email_key(normalize_email(text))
        except InvalidValue as exc:
            raise NotAnIdentity(f"not an email address: {exc.reason}") from None
    try:
        return phone_key(normalize_phone(text, region))
    except InvalidValue:
        raise NotAnIdentity("not an email address or a phone number") from None


def opt_out(rt: Runtime, raw: str, actor: str) -> OptOut:
    """Suppress first (so a sync racing the erasure drops the identity), then erase in every org."""
    key = identity_key(raw)  # a malformed address is refused before anything is touched or audited
    with cross_org(rt.writes, actor=actor, reason="privacy.opt_out"):
        secret = rt.suppression_secret()
        reference = suppression_hash(key, secret)[:16]
        with rt.writes.begin() as session:
            suppress(session, key, secret)
            orgs = orgs_of(session)
        erased = 0
        for org_id in orgs:
            erased += purge_identity(rt, org_id, key).copies_and_records
        with rt.writes.begin() as session:
            session.add(
                AuditEvent(
                    actor=actor,
                    action="privacy.opt_out",
                    target=f"identity:{reference}",
                    details={"orgs": len(orgs), "erased": erased},
                )
            )
        return OptOut(reference, len(orgs), erased)
