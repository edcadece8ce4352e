"""Orgs, members and API keys: the admin writes the CLI and the API share."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.org_policy import PolicyChanges
from models.rls import org_of, scoped
from models.tables import ApiKey, AuditEvent, Member, Org


class AdminError(ValueError):
    """A bad admin request (unknown org, malformed domain …), with a message for the user."""


def normalize_domain(raw: str) -> str:
    """A lowercase IDNA domain."""
    domain = raw.strip().lower().rstrip(".")
    if not domain or "@" in domain or "." not in domain or " " in domain:
        raise AdminError(f"not a domain: {raw!r}")
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise AdminError(f"not a domain: {raw!r}") from exc


def upsert_org(session: Session, slug: str, domains: list[str], actor: str) -> Org:
    """Create the org, or replace its internal domains."""
    if not slug or len(slug) > 100 or not slug.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise AdminError(f"not an org name: {slug!r}")
    clean = sorted({normalize_domain(d) for d in domains})
    if not clean:
        raise AdminError("an org needs at least one domain")
    org = session.execute(select(Org).where(Org.slug == slug)).scalar_one_or_none()
    if org is None:
        org = Org(slug=slug, domains=clean, policy={}, feed_seq=0)
        session.add(org)
    else:
        org.domains = clean
    session.flush()
    scoped(session, org.id)  # a new org's first rows are its own
    session.add(AuditEvent(org_id=org.id, actor=actor, action="org.upserted", target=slug, details={"domains": clean}))
    return org


def set_policy(session: Session, org: Org, changes: PolicyChanges, actor: str, known_sources: Collection[str]) -> Org:
    """Apply policy changes to the org (audited); an unknown source name is refused."""
    unknown = sorted(set(changes.sources or ()) - set(known_sources))
    if unknown:
        raise AdminError(f"unknown sources {unknown}; known: {sorted(known_sources)}")
    org.policy = changes.applied_to(dict(org.policy))
    session.add(
        AuditEvent(
            org_id=org.id, actor=actor, action="org.policy_set", target=org.slug,
            details=changes.model_dump(exclude_none=True),
        )
    )
    session.flush()
    return org


def require_org(session: Session, slug: str) -> Org:
    """The org by name, or a clear error."""
    org = session.execute(select(Org).where(Org.slug == slug)).scalar_one_or_none()
    if org is None:
        raise AdminError(f"no org named {slug!r}")
    return org


def normalize_member_email(raw: str) -> str:
    """Members are addressed by a plain lowercase address."""
    email = raw.strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or " " in email:
        raise AdminError(f"not an email address: {raw!r}")
    return f"{local}@{normalize_domain(domain)}"


def upsert_member(session: Session, org: Org, email: str, actor: str, ended_on: date | None = None) -> Member:
    """Add a member (or change its membership end)."""
    address = normalize_member_email(email)
    member = session.execute(
        select(Member).where(Member.org_id == org.id, Member.email == address)
    ).scalar_one_or_none()
    if member is None:
        member = Member(org_id=org.id, email=address)
        session.add(member)
    member.ended_on = ended_on
    session.flush()
    session.add(
        AuditEvent(
            org_id=org.id,
            actor=actor,
            action="member.upserted",
            target=address,
            details={"ended_on": ended_on.isoformat() if ended_on else None},
        )
    )
    return member


def find_member(session: Session, org: Org, email: str) -> Member | None:
    """A member of the org by address."""
    return session.execute(
        select(Member).where(Member.org_id == org.id, Member.email == normalize_member_email(email))
    ).scalar_one_or_none()


def hash_api_key(key: str) -> str:
    """API keys are stored as SHA-256 digests (they are random, so no salt is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, org: Org, actor: str) -> str:
    """A new random key for the org; only its hash is kept."""
    key = "sxk_" + secrets.token_urlsafe(32)
    session.add(ApiKey(org_id=org.id, key_hash=hash_api_key(key)))
    session.add(AuditEvent(org_id=org.id, actor=actor, action="apikey.created", target=org.slug))
    return key


def org_of_stored_key(session: Session, key: str) -> Org | None:
    """The org a stored (hashed) key belongs to (found before any org is set)."""
    org_id = org_of(session, "api_key", hash_api_key(key))
    return session.get(Org, org_id) if org_id is not None else None
