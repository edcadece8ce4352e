"""The store's tables: one org-scoped schema that runs the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, tz-aware UTC (every stored time is)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back tz-aware UTC (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the JSON type mapped."""

    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: UTCDateTime}


class Org(Base):
    """A customer: its internal domains and its per-org policy (weights, windows, subjects)."""

    __tablename__ = "orgs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    domains: Mapped[list[str]] = mapped_column(default=list)
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    feed_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    decayed_at: Mapped[datetime | None] = mapped_column(default=None)  # last daily strength recompute
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Member(Base):
    """A rep of the org; the end of membership starts the retention clock."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("org_id", "email"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_on: Mapped[date | None] = mapped_column(Date, default=None)


CONNECTION_STATUSES = ("active", "reauth_required", "paused", "revoked")


class Connection(Base):
    """One rep's authorization of one source."""

    __tablename__ = "connections"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(40))
    provider: Mapped[str] = mapped_column(String(40))
    account: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default="active")
    scopes: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="SET NULL"), default=None, index=True
    )
    # disconnected with a grace period: its data is purged at this time unless the rep reconnects first
    purge_due_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Credential(Base):
    """One grant's OAuth tokens (a member's consent to a provider), encrypted, shared by the connections
    it covers (Gmail, Calendar and Contacts are one Google grant: rotating refresh tokens must not be
    copied); `version` makes refresh compare-and-swap."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("member_id", "provider"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(40))
    access_token: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SyncState(Base):
    """One stream of one connection: its cursor (versioned), lease and progress."""

    __tablename__ = "sync_states"
    __table_args__ = (
        UniqueConstraint("connection_id", "stream"),
        Index("ix_sync_states_due", "next_run_at"),
        # the reconciler's stalled-chain query walks only running streams (O(running), not O(connections));
        # the predicate is spelled as the query renders it, so both stores' planners match the partial index
        Index(
            "ix_sync_states_running_lease",
            "lease_until",
            sqlite_where=text("running IS 1"),
            postgresql_where=text("running IS true"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(60))
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    version: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_version: Mapped[int] = mapped_column(Integer, default=-1)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    in_full_pass: Mapped[bool] = mapped_column(default=True)
    running: Mapped[bool] = mapped_column(default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(80), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    last_progress_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[bool] = mapped_column(default=False)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    records_total: Mapped[int] = mapped_column(BigInteger, default=0)
    api_calls_total: Mapped[int] = mapped_column(BigInteger, default=0)
    pages_total: Mapped[int] = mapped_column(BigInteger, default=0)
    # pages stored in a row that advanced nothing (same cursor, no record): a loop reporting success
    idle_pages: Mapped[int] = mapped_column(Integer, default=0)
    throttled_total: Mapped[int] = mapped_column(BigInteger, default=0)  # provider rate-limit answers
    backfill_progress: Mapped[float | None] = mapped_column(Float, default=None)  # 0..1, the connector's estimate
    # page jobs at `crash_version` that took the lease and never ended (their worker died): poison detection
    crash_count: Mapped[int] = mapped_column(Integer, default=0)
    crash_version: Mapped[int | None] = mapped_column(Integer, default=None)


class Activity(Base):
    """One real-world event (an email by Message-ID, a meeting by iCalUID, a CRM record)."""

    __tablename__ = "activities"
    __table_args__ = (UniqueConstraint("org_id", "dedupe_key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    dedupe_key: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    noise: Mapped[str | None] = mapped_column(String(20), default=None)
    subject: Mapped[str | None] = mapped_column(Text, default=None)


class Sighting(Base):
    """One source's copy of an activity (a message in one mailbox), by natural key."""

    __tablename__ = "sightings"
    __table_args__ = (
        UniqueConstraint("connection_id", "source", "external_id"),
        Index("ix_sightings_activity", "activity_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(60))
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    occurred_at: Mapped[datetime]
    noise: Mapped[str | None] = mapped_column(String(20), default=None)
    malformed_from: Mapped[bool] = mapped_column(default=False)


class Participant(Base):
    """An address on one copy of an activity (the union over copies is the activity's)."""

    __tablename__ = "participants"
    __table_args__ = (
        Index("ix_participants_sighting", "sighting_id"),
        Index("ix_participants_activity", "activity_id"),
        Index("ix_participants_email", "org_id", "email"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    sighting_id: Mapped[int] = mapped_column(ForeignKey("sightings.id", ondelete="CASCADE"))
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    email: Mapped[str] = mapped_column(String(320))  # "" when the source knows the person by record only
    name: Mapped[str | None] = mapped_column(String(300), default=None)
    declined: Mapped[bool] = mapped_column(default=False)
    person_ref: Mapped[str | None] = mapped_column(String(300), default=None)


CONTACT_STATUSES = ("active", "merged", "deleted")


class Contact(Base):
    """An external person of an org's network; merged and deleted ones stay as feed tombstones."""

    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_feed", "org_id", "feed_seq"),
        Index("ix_contacts_merged_into", "merged_into"),  # re-pointing merge chains must not scan the org
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(300), default=None)
    name_rank: Mapped[int] = mapped_column(Integer, default=0)
    company_domain: Mapped[str | None] = mapped_column(String(255), default=None)
    company: Mapped[str | None] = mapped_column(String(300), default=None)  # a CRM account name, when one is known
    status: Mapped[str] = mapped_column(String(10), default="active")
    merged_into: Mapped[int | None] = mapped_column(BigInteger, default=None)
    feed_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PersonRecord(Base):
    """An address-book or CRM entry as its source last showed it: the identities it ties together."""

    __tablename__ = "person_records"
    __table_args__ = (
        UniqueConstraint("connection_id", "source", "external_id"),
        Index("ix_person_records_ref", "org_id", "ref"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(60))
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(255))
    ref: Mapped[str] = mapped_column(String(300))  # "source:external_id", as activities reference it
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(300), default=None)
    emails: Mapped[list[str]] = mapped_column(default=list)
    phones: Mapped[list[str]] = mapped_column(default=list)
    company: Mapped[str | None] = mapped_column(String(300), default=None)
    merged_from: Mapped[list[str]] = mapped_column(default=list)
    content_hash: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=0)


class RecordKey(Base):
    """One identity key a person record carries ("email:…", "phone:…", "ref:source:id"), for tie lookups."""

    __tablename__ = "record_keys"
    __table_args__ = (Index("ix_record_keys_key", "org_id", "key"), Index("ix_record_keys_record", "record_id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    record_id: Mapped[int] = mapped_column(ForeignKey("person_records.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(340))


class IdentityConflict(Base):
    """A key shared by too many records to be a person (a shared inbox): it ties nothing, ops are told."""

    __tablename__ = "identity_conflicts"
    __table_args__ = (UniqueConstraint("org_id", "key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(340))
    records: Mapped[int] = mapped_column(Integer)
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)


class Identity(Base):
    """An email or a source record id ("ref") of a contact; unique within an org."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("org_id", "kind", "value"),
        Index("ix_identities_contact", "contact_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(320))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    origin_contact_id: Mapped[int | None] = mapped_column(BigInteger, default=None)  # its first contact


INTERACTION_KINDS = ("email_out", "email_in", "meeting", "call")


class Interaction(Base):
    """A member's interaction with an external identity through one activity (counted once)."""

    __tablename__ = "interactions"
    __table_args__ = (
        UniqueConstraint("activity_id", "member_id", "identity_id", "kind"),
        Index("ix_interactions_pair", "member_id", "identity_id"),
        Index("ix_interactions_identity", "identity_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12))
    occurred_at: Mapped[datetime]


class Relationship(Base):
    """A member's aggregated, decayed tie to a contact (recomputed for touched pairs)."""

    __tablename__ = "relationships"
    __table_args__ = (Index("ix_relationships_contact", "contact_id"),)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    email_out: Mapped[int] = mapped_column(Integer, default=0)
    email_in: Mapped[int] = mapped_column(Integer, default=0)
    meeting: Mapped[int] = mapped_column(Integer, default=0)
    call: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    strength: Mapped[float] = mapped_column(Float, default=0.0)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Rejected(Base):
    """A provider record (or part of one) that could not be normalized, with its reason."""

    __tablename__ = "rejected"
    __table_args__ = (UniqueConstraint("connection_id", "source", "external_id", "reason", "detail"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Who did what to which data, when (never a secret)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_org_at", "org_id", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Suppression(Base):
    """An opted-out identity, kept only as a keyed hash."""

    __tablename__ = "suppressions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    identity_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoredSecret(Base):
    """A product secret kept in the store, encrypted with the vault (e.g. the opt-out list's HMAC key,
    which must outlive key rotation: hashing with a rotating key would forget every opt-out)."""

    __tablename__ = "stored_secrets"
    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Outbox(Base):
    """A message for the delivery service (e.g. an opt-out confirmation link); it deletes what it sends."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(320))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OpsSample(Base):
    """The sync totals at one instant, for the dashboard's chart (kept a day; every process adds to it)."""

    __tablename__ = "ops_samples"
    at: Mapped[datetime] = mapped_column(primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger)
    pages: Mapped[int] = mapped_column(BigInteger)
    api_calls: Mapped[int] = mapped_column(BigInteger)
    failing: Mapped[int] = mapped_column(Integer)
    dead_letters: Mapped[int] = mapped_column(Integer)


class UsedLink(Base):
    """A single-use signed link that was used (replays are refused)."""

    __tablename__ = "used_links"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An org-scoped API key, stored hashed."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OAuthState(Base):
    """A consent attempt's single-use state: PKCE verifier (encrypted) and who asked."""

    __tablename__ = "oauth_states"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(40))
    code_verifier: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
