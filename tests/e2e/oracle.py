"""An independent oracle: the contact network DESIGN.md's rules derive from raw Gmail message copies.

It reads the same raw headers the sandbox serves and applies the rules of DESIGN.md ("Normalization
rules") with the standard library's `email.headerregistry` parser (`email.policy.default`), never the
product's `email.utils.getaddresses`-based parser, so a parsing bug in the product shows up as a
difference. The only product import is the free-mail domain list, which is product data, not logic.

Decisions where DESIGN.md leaves room, each mirroring the product's documented behaviour:

- Window: a copy whose Gmail internalDate is older than `now - backfill_days` is never synced.
- Copies in TRASH, SPAM or DRAFT are not mail the network sees (the product maps them to deletions).
- Activity key: the Message-ID without its angle brackets and whitespace; a message without one is
  keyed by its From, Date, Subject and To headers, so its copies in several mailboxes still collapse
  into one activity (connectors/gmail_mapping.py `dedupe_key`).
- Activity time: the Date header; a copy whose Date is missing or unparseable contributes its own
  internalDate instead; the activity's time is the earliest over its copies.
- A contact's name: the decoded display name seen most often for its address over the participants
  of every stored copy (each (copy, role, address) once, noise copies included), ties broken by the
  lexicographically smallest name (sync/contacts.py `refresh_names`); no name seen -> None.
- Malformed From: the From header yields no valid address. A From such as `Reyes, Dana <d@x>` (an
  unquoted comma) holds one bad entry ("Reyes") and one valid mailbox; the valid one is the sender.
- Automated senders: the address's local part is exactly one of DESIGN.md's names
  (`notifications-noreply@…` is not `notifications@…`).

Where `email.headerregistry` and the generator disagree on a pathological entry, the generator's intent
(sandbox/vocab.py MALFORMED: each template is malformed) decides: an entry with any parse defect
(`<a@x`, `a@x>`, an unterminated quote) is rejected, although the stdlib would recover an address from
it. The comment form `a@x (Dana Reyes)` is the generator's way of naming (sandbox/mailgen.py
`mailbox`), so its comment is the display name when there is no phrase.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.errors import HeaderDefect
from email.policy import default as default_policy

from sandbox.world import MailMessage
from sync.freemail import FREE_MAIL_DOMAINS

HIDDEN_LABELS = frozenset({"TRASH", "SPAM", "DRAFT"})
ROLES = (("from", "From"), ("to", "To"), ("cc", "Cc"), ("bcc", "Bcc"))
AUTOMATED = frozenset(
    {"noreply", "no-reply", "donotreply", "do-not-reply", "mailer-daemon", "postmaster", "bounce", "bounces",
     "notifications"}
)  # fmt: skip
BULK = frozenset({"bulk", "list", "junk"})
MAX_PARTICIPANTS = 25
WEIGHTS = {"email_out": 1.0, "email_in": 0.7}
HALF_LIFE_DAYS = 90.0
SCALE = 10.0
REASONS = frozenset(
    {"unbalanced", "no_address", "ambiguous", "empty", "no_at", "bad_local_part", "bad_domain", "too_long"}
)

_ATEXT_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_BRACKETED = re.compile(r"<([^<>]*)>")
_COMMENT_FORM = re.compile(r"^\s*(\S+@\S+)\s+\((.*)\)\s*$", re.DOTALL)


# ----------------------------------------------------------------------------------------------
# header parsing (stdlib headerregistry; independent of connectors/)


@dataclass(frozen=True)
class Parsed:
    """One address-list header: valid (email, name) pairs in order, and the raw text of bad entries."""

    addresses: tuple[tuple[str, str | None], ...]
    bad: tuple[str, ...]


def split_entries(value: str) -> list[str]:
    """Entries of an address list: split at `,`/`;` outside quotes, comments and angle brackets.

    A group's display name (`name:`) is dropped, keeping its members. A quote or parenthesis that never
    closes is taken as a plain character (so it cannot swallow the rest of the header).
    """
    literal: set[int] = set()
    while True:
        entries: list[str] = []
        current: list[str] = []
        quote_at: int | None = None
        parens: list[int] = []
        angle = 0
        escaped = False
        for i, char in enumerate(value):
            if escaped:
                current.append(char)
                escaped = False
                continue
            if (quote_at is not None or parens) and char == "\\":
                current.append(char)
                escaped = True
                continue
            if quote_at is not None:
                current.append(char)
                if char == '"':
                    quote_at = None
                continue
            if i in literal:
                current.append(char)
                continue
            if char == "(":
                parens.append(i)
            elif char == ")" and parens:
                parens.pop()
            elif not parens:
                if char == '"':
                    quote_at = i
                elif char == "<":
                    angle += 1
                elif char == ">":
                    angle -= 1
                elif char in ",;" and angle <= 0:
                    entries.append("".join(current))
                    current, angle = [], 0
                    continue
                elif char == ":" and angle <= 0:
                    current = []  # a group's display name
                    continue
            current.append(char)
        if quote_at is not None or parens:
            literal.add(quote_at if quote_at is not None else parens[0])
            continue
        entries.append("".join(current))
        return [e.strip() for e in entries if e.strip()]


def ascii_domain(domain: str) -> str | None:
    """Lowercased IDNA (stdlib codec) form of a domain, or None when it is not a host name."""
    domain = domain.strip().lower().rstrip(".")
    if not domain or any(c.isspace() for c in domain):
        return None
    try:
        encoded = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = encoded.split(".")
    if len(labels) < 2 or not all(labels) or labels[-1].isdigit():
        return None
    return encoded


def clean_name(raw: str | None, email: str) -> str | None:
    name = " ".join((raw or "").split())
    if not name or name.lower() in (email, f"<{email}>"):
        return None
    return name


def normalize_parts(local: str, domain: str) -> str | None:
    """`local@domain` trimmed, lowercased, IDNA domain; None when the local part or domain is not usable."""
    local = local.strip().lower()
    if not local or not _ATEXT_LOCAL.match(local) or local.startswith(".") or ".." in local:
        return None
    ascii_form = ascii_domain(domain)
    return None if ascii_form is None else f"{local}@{ascii_form}"


def normalize_address(raw: str) -> str | None:
    """A bare address as a structured source gives it (Graph, CRM, address book), or None when it is not one."""
    local, at, domain = raw.strip().rpartition("@")
    return normalize_parts(local, domain) if at else None


def parse_entry(text: str) -> tuple[str, str | None] | None:
    """One entry -> (normalized email, display name), or None when it is not one clean address."""
    try:
        header = default_policy.header_factory("To", text)
    except Exception:  # the stdlib parser raises on some garbage ("dana@"); that entry is malformed
        return None
    defects: Sequence[HeaderDefect] = header.defects
    addresses = header.addresses
    if defects or len(addresses) != 1:
        return None
    address = addresses[0]
    email = normalize_parts(address.username, address.domain)
    if email is None:
        return None
    name = address.display_name
    if not name:
        comment = _COMMENT_FORM.match(text)
        name = comment.group(2) if comment else None
    return email, clean_name(name, email)


def parse_addresses(value: str) -> Parsed:
    """Every valid address of a header value; each bad entry is kept, alone, as rejected."""
    good: list[tuple[str, str | None]] = []
    bad: list[str] = []
    for entry in split_entries(value):
        parsed = parse_entry(entry)
        if parsed is None:
            bad.append(entry)
        else:
            good.append(parsed)
    return Parsed(tuple(good), tuple(bad))


def parse_date(value: str | None) -> datetime | None:
    """The Date header as aware UTC (no zone / -0000 taken as UTC), or None when unusable."""
    if value is None or not value.strip():
        return None
    try:
        when = default_policy.header_factory("Date", value).datetime
    except Exception:
        return None
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def message_key(msg: MailMessage) -> str:
    """Message-ID without brackets/whitespace; else the id-less message's From/Date/Subject/To."""
    for value in msg.header_values("Message-ID"):
        bracketed = _BRACKETED.search(value)
        key = "".join((bracketed.group(1) if bracketed else value).split()).strip("<>")
        if key:
            return key
    parts = ["\n".join(msg.header_values(name)) for name in ("From", "Date", "Subject", "To")]
    return "no-message-id:" + "\0".join(parts)


# ----------------------------------------------------------------------------------------------
# the rules


def decayed_strength(times: Iterable[tuple[str, datetime]], now: datetime, weights: Mapping[str, float]) -> float:
    """DESIGN.md's strength: 1 - exp(-sum(weight x 0.5^(age_days / half-life)) / scale), ages never negative."""
    total = sum(
        weights[kind] * 0.5 ** (max(0.0, (now - at).total_seconds() / 86400.0) / HALF_LIFE_DAYS) for kind, at in times
    )
    return 1.0 - math.exp(-total / SCALE)


@dataclass
class ExpectedTie:
    """One member's relationship with a contact."""

    member: str
    email_out: int = 0
    email_in: int = 0
    times: list[tuple[str, datetime]] = field(default_factory=list)

    def first_at(self) -> str:
        return iso(min(t for _, t in self.times))

    def last_at(self) -> str:
        return iso(max(t for _, t in self.times))

    def strength(self, now: datetime) -> float:
        return decayed_strength(self.times, now, WEIGHTS)


@dataclass
class ExpectedContact:
    email: str
    name: str | None
    company_domain: str | None
    ties: dict[str, ExpectedTie]


@dataclass
class Expected:
    """The network the rules give, plus what the store should hold beside it."""

    contacts: dict[str, ExpectedContact]  # by email (one email per contact: mail gives no joins)
    activities: set[str]  # activity keys, noise included
    noise: set[str]
    rejected: set[tuple[str, str]]  # (gmail id of the copy, "Role: raw entry")
    now: datetime
    evidence: dict[str, set[str]]  # contact email -> keys of the non-noise activities naming it


@dataclass
class MailCopy:
    mailbox: str
    gmail_id: str
    key: str
    time: datetime
    noise: bool
    has_sender: bool
    participants: dict[tuple[str, str], str | None]  # (role, email) -> first name seen in this copy


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_external(email: str, members: frozenset[str], domains: frozenset[str]) -> bool:
    if email in members:
        return False
    domain = email.rpartition("@")[2]
    return domain not in domains and not any(domain.endswith("." + d) for d in domains)


def is_automated(email: str) -> bool:
    return email.rpartition("@")[0] in AUTOMATED


def read_copy(mailbox: str, msg: MailMessage, rejected: set[tuple[str, str]]) -> MailCopy:
    participants: dict[tuple[str, str], str | None] = {}
    for role, title in ROLES:
        for value in msg.header_values(title):
            parsed = parse_addresses(value)
            for email, name in parsed.addresses:
                participants.setdefault((role, email), name)
            rejected.update((msg.id, f"{title}: {raw[:120]}") for raw in parsed.bad)
    senders = [email for role, email in participants if role == "from"]

    def first(name: str) -> str:
        return (msg.header(name) or "").strip()

    noise = (
        any(is_automated(s) for s in senders)
        or bool(first("List-Id"))
        or bool(first("List-Unsubscribe"))
        or first("Precedence").lower() in BULK
    )
    received = datetime.fromtimestamp(msg.internal_date_ms / 1000, UTC)
    return MailCopy(
        mailbox,
        msg.id,
        message_key(msg),
        parse_date(msg.header("Date")) or received,
        noise,
        bool(senders),
        participants,
    )


def expected_network(
    copies: Mapping[str, Iterable[MailMessage]],
    *,
    members: Sequence[str],
    org_domains: Sequence[str],
    now: datetime,
    backfill_days: int = 365,
) -> Expected:
    """The network from the copies in the connected mailboxes ({mailbox: messages with live labels})."""
    member_set = frozenset(m.lower() for m in members)
    domains = frozenset(d.lower() for d in org_domains)
    oldest = now - timedelta(days=backfill_days)
    rejected: set[tuple[str, str]] = set()
    by_key: dict[str, list[MailCopy]] = defaultdict(list)
    names: dict[str, Counter[str]] = defaultdict(Counter)
    for mailbox, messages in copies.items():
        for msg in messages:
            if HIDDEN_LABELS & set(msg.label_ids):
                continue
            if datetime.fromtimestamp(msg.internal_date_ms / 1000, UTC) < oldest:
                continue
            copy = read_copy(mailbox, msg, rejected)
            by_key[copy.key].append(copy)
            for (_, email), name in copy.participants.items():
                if name:
                    names[email][name] += 1

    contacts: dict[str, ExpectedContact] = {}
    noise_keys: set[str] = set()
    evidence: dict[str, set[str]] = defaultdict(set)

    def contact(email: str) -> ExpectedContact:
        if email not in contacts:
            domain = email.rpartition("@")[2]
            seen = names.get(email)
            best = min(seen.items(), key=lambda kv: (-kv[1], kv[0]))[0] if seen else None
            contacts[email] = ExpectedContact(email, best, None if domain in FREE_MAIL_DOMAINS else domain, {})
        return contacts[email]

    for key, group in by_key.items():
        union = {rp for c in group for rp in c.participants}
        distinct = {email for _, email in union}
        if any(c.noise for c in group) or len(distinct) > MAX_PARTICIPANTS:
            noise_keys.add(key)
            continue
        for email in distinct:
            if is_external(email, member_set, domains):
                contact(email)
                evidence[email].add(key)
        if not all(c.has_sender for c in group):
            continue  # a malformed From: contacts, but no interactions
        when = min(c.time for c in group)
        senders = {email for role, email in union if role == "from"}
        recipients = {email for role, email in union if role in ("to", "cc", "bcc")}
        found: set[tuple[str, str, str]] = set()
        for sender in senders:
            if sender in member_set:
                found |= {(sender, r, "email_out") for r in recipients if is_external(r, member_set, domains)}
            elif is_external(sender, member_set, domains):
                found |= {(r, sender, "email_in") for r in recipients if r in member_set}
        for member, email, kind in found:
            tie = contact(email).ties.setdefault(member, ExpectedTie(member))
            if kind == "email_out":
                tie.email_out += 1
            else:
                tie.email_in += 1
            tie.times.append((kind, when))
    return Expected(contacts, set(by_key), noise_keys, rejected, now, dict(evidence))
