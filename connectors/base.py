"""The one small interface every connector honours: plain data in, plain data out, no database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

JSON = dict[str, Any]

ActivityKind = Literal["email", "meeting", "call", "crm_email", "crm_email_in"]  # crm_email_in: logged, received
ParticipantRole = Literal["from", "to", "cc", "bcc", "organizer", "attendee", "owner", "associated"]


@dataclass(frozen=True)
class Endpoints:
    """Where a provider lives: every URL is overridable (sandboxes, EU hosts, national clouds)."""

    api_url: str
    ca_bundle: str | None = None
    timeout: float = 30.0


class Quota(Protocol):
    """The rate budget of one provider account that the sync layer shares across workers (a no-op by default).

    `spend(cost)` runs before each HTTP request (cost in the provider's units: Gmail quota units, else
    requests; `pool` names requests the provider limits apart, e.g. HubSpot's "search"); it may sleep, or
    raise RateLimited when the wait is long. `answered(cost)` says the answer to that spend came back (a
    short rolling window then counts it from now). `tell(...)` passes on what an answer said: a Retry-After
    wait, or a rate-limit window (`limit` calls per `window` s, `remaining` left).
    """

    def spend(self, cost: float, pool: str = "") -> None: ...

    def answered(self, cost: float, pool: str = "") -> None: ...

    def tell(
        self,
        *,
        retry_after: float = 0.0,
        limit: float | None = None,
        remaining: float | None = None,
        window: float | None = None,
    ) -> None: ...


class NoQuota:
    """No shared budget: connectors called outside the sync layer (connect flow, tests, benches)."""

    def spend(self, cost: float, pool: str = "") -> None:
        return None

    def answered(self, cost: float, pool: str = "") -> None:
        return None

    def tell(
        self,
        *,
        retry_after: float = 0.0,
        limit: float | None = None,
        remaining: float | None = None,
        window: float | None = None,
    ) -> None:
        return None


NO_QUOTA = NoQuota()


@dataclass(frozen=True)
class FetchContext:
    """What a connector is handed for one page: a fresh access token and the endpoint settings."""

    access_token: str
    endpoints: Endpoints
    account: str  # the connected account's own address (from the provider, not the rep)
    now: datetime
    backfill_days: int = 365
    page_size: int = 500
    # extra provider facts saved at connect time (e.g. Salesforce instance_url)
    extra: Mapping[str, str] = field(default_factory=dict)
    quota: Quota = NO_QUOTA  # the account's shared rate budget (sync/ratelimit.py)


@dataclass(frozen=True)
class Participant:
    """One person on an activity: a normalized address, or a reference to a person record.

    Mail and calendars know people by address (`email`, already trimmed/lowercased/IDNA). CRMs
    often know them only by record id: `person_ref` names a `PersonObservation` of the same source
    as "source:external_id" (e.g. "salesforce:003XX…", "hubspot:owner:42"); the sync layer resolves
    it to that record's identities. `email` is "" when only the reference is known.
    """

    role: ParticipantRole
    email: str
    name: str | None = None
    declined: bool = False
    person_ref: str | None = None


@dataclass(frozen=True)
class Rejection:
    """A record (or part of one) that could not be normalized, kept with its reason."""

    source: str
    external_id: str
    reason: str  # short machine code, e.g. "bad_address", "no_message_id"
    detail: str  # human text, never a secret or a body


@dataclass(frozen=True)
class ActivityObservation:
    """One copy of a real-world event as one source saw it."""

    source: str  # e.g. "gmail"
    external_id: str  # the provider's id of this copy (unique per connection)
    kind: ActivityKind
    dedupe_key: str  # RFC 5322 Message-ID, iCalUID, or "source:id" for CRM records
    occurred_at: datetime
    participants: tuple[Participant, ...]
    noise: str | None = None  # why this is not an interaction ("automated", "list", "bulk", "too_many")
    subject: str | None = None
    malformed_from: bool = False


@dataclass(frozen=True)
class PersonObservation:
    """An address-book or CRM entry: the identities it ties together (one person), and a name.

    `kind` says what the record is: "contact" (address book, CRM contact), "lead", "other_contact"
    (Google's auto-saved "other contacts"), or "user" (a CRM user / owner: a person of the org,
    referenced by activities as their owner, never a contact). `external_id` is the record's id in
    the source; `merged_from` lists ids of records the source merged into this one.
    """

    source: str
    external_id: str
    name: str | None
    emails: tuple[str, ...] = ()  # normalized
    phones: tuple[str, ...] = ()  # raw; sync normalizes with the org's default region
    company: str | None = None  # the company (account) name, when the source has one
    merged_from: tuple[str, ...] = ()
    kind: str = "contact"
    # the stream that owns the record when another one re-sends it (a renamed company re-sending its
    # contacts): only the owner's full pass may sweep it, so the re-send leaves its stream and generation
    owner_stream: str | None = None


@dataclass(frozen=True)
class Deletion:
    """A source record that no longer exists."""

    source: str
    external_id: str


Observation = ActivityObservation | PersonObservation | Deletion


def owned_by(stream: str, observations: list[Observation]) -> list[Observation]:
    """Person records re-sent on behalf of `stream` (their owner), the rest as they are."""
    return [replace(o, owner_stream=stream) if isinstance(o, PersonObservation) else o for o in observations]


@dataclass(frozen=True)
class Page:
    """One page of one stream: what was observed, and the cursor after it."""

    observations: list[Observation]
    rejections: list[Rejection]
    cursor: JSON  # JSON-serializable; stored verbatim and handed back next time
    done: bool  # True when the stream has caught up (nothing more to fetch now)
    api_calls: int
    full_resync: bool = False  # this page belongs to a full resync (sweep unseen records when done)
    retry_after: float = 0.0  # the provider throttled part of the page: fetch the next one no sooner than this
    progress: float | None = None  # how much of the full pass is done (0..1), when the connector can tell


class InvalidValue(ValueError):
    """A value that cannot be normalized (an address, a phone); `reason` is a short machine code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class ConnectorError(Exception):
    """A provider failure with context (status, provider error text), never a token."""


class TransientError(ConnectorError):
    """A failure worth retrying later as is (5xx other than 503, network trouble)."""


class RateLimited(ConnectorError):
    """The provider asked us to wait (429/403 rate limit/503): retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unauthorized(ConnectorError):
    """A 401: the access token was refused; refresh once and retry."""


class CursorExpired(ConnectorError):
    """The stored cursor is no longer valid at the provider: fall back to a full resync."""


class Connector(Protocol):
    """A source: its name, its streams, and one page fetch per call."""

    name: str
    provider: str  # which OAuth provider's token it needs: google, microsoft, salesforce, hubspot
    streams: tuple[str, ...]
    scopes: tuple[str, ...]

    def fetch_page(self, stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
        """Fetch the page after `cursor` (None = start a full pass: backfill or resync)."""
        ...

    def whoami(self, ctx: FetchContext) -> str:
        """The connected account's address, as the provider says (never the rep's say-so)."""
        ...
