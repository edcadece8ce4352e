"""What the Google emulator remembers: clients, grants and tokens, live mailboxes, knobs, faults, counters."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox import mailgen, vocab
from sandbox.faults import FaultInjector
from sandbox.gcal_data import calendar_store
from sandbox.gcal_store import CalendarStore
from sandbox.mailbox import Entry, Mailbox
from sandbox.people_book import people_store
from sandbox.people_store import PeopleStore
from sandbox.ratelimit import QuotaBuckets
from sandbox.stats import Stats
from sandbox.world import MailMessage, World, compose_headers, copy_labels, member_roles

SCOPE_MAIL = "https://mail.google.com/"
SCOPE_MODIFY = "https://www.googleapis.com/auth/gmail.modify"
SCOPE_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
SCOPE_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
FULL_READ_SCOPES = frozenset({SCOPE_MAIL, SCOPE_MODIFY, SCOPE_READONLY})
READ_SCOPES = FULL_READ_SCOPES | {SCOPE_METADATA}
KNOWN_SCOPES = READ_SCOPES | {
    "openid",
    "email",
    "profile",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.insert",
    "https://www.googleapis.com/auth/gmail.labels",
    "https://www.googleapis.com/auth/gmail.settings.basic",
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.events.readonly",
    "https://www.googleapis.com/auth/contacts",
    "https://www.googleapis.com/auth/contacts.readonly",
    "https://www.googleapis.com/auth/contacts.other.readonly",
}
# Gmail usage limits: quota units per method
QUOTA_UNITS = {"profile": 1, "list": 5, "get": 5, "history": 2}

DEFAULT_CLIENT_ID = "sandbox-google-client.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "sandbox-google-secret"

# knob name -> type used to coerce JSON values (admin API)
KNOBS: dict[str, str] = {
    "access_token_ttl": "int",
    "code_ttl": "int",
    "history_retention": "int?",
    "quota_units_per_second": "float?",
    "quota_burst_seconds": "float",
    "quota_error": "str",
    "deny_consent": "bool",
    "withheld_scopes": "set",
    "return_refresh_token_on_refresh": "bool",
    "require_offline_access": "bool",
    "metadata_scope_restricts": "bool",
    "max_batch_parts": "int",
    "default_login": "str?",
    "calendar_sync_retention": "int?",
    "people_sync_retention": "int?",
}


class OAuthError(Exception):
    """A token-endpoint failure: HTTP status, OAuth error code and Google's description."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


@dataclass(slots=True)
class OAuthClient:
    """A registered OAuth client; redirect_uris None accepts any http(s) URI (the product's is dynamic)."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] | None = None


@dataclass(slots=True)
class AuthCode:
    code: str
    client_id: str
    mailbox: str
    scopes: tuple[str, ...]
    redirect_uri: str
    code_challenge: str
    expires_at: float
    offline: bool
    used: bool = False
    grant_id: str | None = None


@dataclass(slots=True)
class Grant:
    """One user consent; revoking any of its tokens revokes all of them."""

    id: str
    client_id: str
    mailbox: str
    scopes: tuple[str, ...]
    refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass(slots=True)
class AccessToken:
    token: str
    grant_id: str
    mailbox: str
    scopes: frozenset[str]
    expires_at: float
    revoked: bool = False


def s256(verifier: str) -> str:
    """PKCE S256 code challenge of a verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class GoogleState:
    """In-process handle on the Google emulator; every public method is thread-safe."""

    def __init__(self, world: World | None = None, *, seed: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self._rng = random.Random(seed)
        self.world = world
        # knobs
        self.access_token_ttl = 3599
        self.code_ttl = 600
        self._history_retention: int | None = None
        self.quota_units_per_second: float | None = None
        self.quota_burst_seconds = 1.0
        self.quota_error = "429"  # or "403" (userRateLimitExceeded)
        self.deny_consent = False
        self.withheld_scopes: set[str] = set()
        self.return_refresh_token_on_refresh = False
        self.require_offline_access = True
        self.metadata_scope_restricts = True  # gmail.metadata restricts q/format even beside a read scope
        self.max_batch_parts = 100
        self.default_login: str | None = None
        self.calendar_sync_retention: int | None = None  # changes a Calendar sync token survives (None: all)
        self.people_sync_retention: int | None = None  # changes a People sync token survives (None: all)
        self._calendar: CalendarStore | None = None
        self._people: PeopleStore | None = None
        # registry
        self.clients: dict[str, OAuthClient] = {
            DEFAULT_CLIENT_ID: OAuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        }
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> grant id
        self.mailboxes: dict[str, Mailbox] = {}
        self.faults = FaultInjector(seed)
        self.quota = QuotaBuckets()
        self.stats = Stats()
        self.token_calls: Counter[str] = Counter()
        if world is not None:
            for email in world.members:
                self.mailboxes[email.lower()] = Mailbox(email.lower(), world.mailboxes.get(email, ()))

    # -- calendars and contacts (generated on first use: Gmail-only runs never pay for them) -------------
    @property
    def calendar(self) -> CalendarStore:
        with self.lock:
            if self._calendar is None:
                self._calendar = calendar_store(self._world(), lock=self.lock, clock=self.clock)
            return self._calendar

    @property
    def people(self) -> PeopleStore:
        with self.lock:
            if self._people is None:
                self._people = people_store(self._world(), lock=self.lock, clock=self.clock)
            return self._people

    def _world(self) -> World:
        """The generated world, or an empty one holding the live mailboxes as members."""
        if self.world is not None:
            return self.world
        members = tuple(self.mailboxes)
        return World(0, datetime.now(UTC), "", members, {}, [], {})

    # -- knobs -------------------------------------------------------------------------------------
    @property
    def history_retention(self) -> int | None:
        """Records kept per mailbox (None: all); older startHistoryIds get 404."""
        return self._history_retention

    @history_retention.setter
    def history_retention(self, value: int | None) -> None:
        with self.lock:
            self._history_retention = value
            for box in self.mailboxes.values():
                box.trim_history(value)

    def configure(self, **knobs: Any) -> None:
        """Set knobs by name (see KNOBS), coercing JSON-ish values."""
        with self.lock:
            for name, value in knobs.items():
                kind = KNOBS.get(name)
                if kind is None:
                    raise ValueError(f"unknown knob {name!r}; known: {sorted(KNOBS)}")
                if value is None and kind.endswith("?"):
                    coerced: Any = None
                elif kind.startswith("int"):
                    coerced = int(value)
                elif kind.startswith("float"):
                    coerced = float(value)
                elif kind == "bool":
                    coerced = bool(value)
                elif kind == "set":
                    coerced = set(value)
                else:
                    coerced = str(value)
                if name == "quota_error" and coerced not in ("429", "403"):
                    raise ValueError("quota_error must be '429' or '403'")
                setattr(self, name, coerced)

    def knobs(self) -> dict[str, Any]:
        with self.lock:
            out = {name: getattr(self, name) for name in KNOBS}
            out["withheld_scopes"] = sorted(self.withheld_scopes)
            return out

    # -- OAuth -------------------------------------------------------------------------------------
    def _token(self, prefix: str, nbytes: int) -> str:
        return prefix + secrets.token_urlsafe(nbytes)

    def pick_login(self, login_hint: str | None) -> str | None:
        """The mailbox the (auto-approving) user signs in with, or None (-> access_denied)."""
        with self.lock:
            if login_hint:
                hint = login_hint.strip().lower()
                return hint if hint in self.mailboxes else None
            if self.default_login:
                return self.default_login.lower()
            return next(iter(self.mailboxes), None)

    def issue_code(
        self,
        *,
        client_id: str,
        mailbox: str,
        scopes: Sequence[str],
        redirect_uri: str,
        code_challenge: str,
        offline: bool,
    ) -> str:
        with self.lock:
            code = self._token("4/0A", 48)
            self.codes[code] = AuthCode(
                code,
                client_id,
                mailbox,
                tuple(scopes),
                redirect_uri,
                code_challenge,
                self.clock() + self.code_ttl,
                offline,
            )
            return code

    def _issue_access(self, grant: Grant) -> AccessToken:
        token = AccessToken(
            self._token("ya29.", 96),
            grant.id,
            grant.mailbox,
            frozenset(grant.scopes),
            self.clock() + self.access_token_ttl,
        )
        self.access_tokens[token.token] = token
        grant.access_tokens.add(token.token)
        return token

    def _issue_refresh(self, grant: Grant) -> str:
        token = self._token("1//", 72)
        self.refresh_tokens[token] = grant.id
        grant.refresh_tokens.add(token)
        return token

    def _revoke_grant(self, grant: Grant) -> None:
        grant.revoked = True
        for token in grant.access_tokens:
            at = self.access_tokens.get(token)
            if at is not None:
                at.revoked = True
        for token in grant.refresh_tokens:
            self.refresh_tokens.pop(token, None)

    def exchange_code(
        self, *, code: str, client_id: str, redirect_uri: str | None, code_verifier: str | None
    ) -> dict[str, Any]:
        """authorization_code grant; raises OAuthError as Google would answer."""
        with self.lock:
            self.token_calls["authorization_code"] += 1
            auth = self.codes.get(code)
            if auth is None:
                raise OAuthError(400, "invalid_grant", "Malformed auth code.")
            if auth.client_id != client_id:
                raise OAuthError(400, "invalid_grant", "Unauthorized")
            if auth.used:
                # replay: Google refuses and revokes what the first redemption issued
                grant = self.grants.get(auth.grant_id or "")
                if grant is not None:
                    self._revoke_grant(grant)
                raise OAuthError(400, "invalid_grant", "Bad Request")
            if self.clock() > auth.expires_at:
                raise OAuthError(400, "invalid_grant", "Bad Request")
            if redirect_uri != auth.redirect_uri:
                raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
            if not code_verifier:
                raise OAuthError(400, "invalid_grant", "Missing code verifier.")
            if s256(code_verifier) != auth.code_challenge:
                raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
            auth.used = True
            grant = Grant(secrets.token_hex(8), client_id, auth.mailbox, auth.scopes)
            self.grants[grant.id] = grant
            auth.grant_id = grant.id
            access = self._issue_access(grant)
            body: dict[str, Any] = {"access_token": access.token, "expires_in": self.access_token_ttl}
            if auth.offline or not self.require_offline_access:
                body["refresh_token"] = self._issue_refresh(grant)
            body["scope"] = " ".join(grant.scopes)
            body["token_type"] = "Bearer"
            return body

    def refresh(self, *, refresh_token: str, client_id: str, scope: str | None = None) -> dict[str, Any]:
        """refresh_token grant: a new access token, no new refresh token (unless the knob says so)."""
        with self.lock:
            self.token_calls["refresh_token"] += 1
            grant = self.grants.get(self.refresh_tokens.get(refresh_token, ""))
            if grant is None or grant.revoked:
                raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
            if grant.client_id != client_id:
                raise OAuthError(401, "unauthorized_client", "Unauthorized")
            if scope and not set(scope.split()) <= set(grant.scopes):
                raise OAuthError(400, "invalid_scope", "Bad Request")
            access = self._issue_access(grant)
            body: dict[str, Any] = {
                "access_token": access.token,
                "expires_in": self.access_token_ttl,
                "scope": " ".join(grant.scopes),
                "token_type": "Bearer",
            }
            if self.return_refresh_token_on_refresh:
                body["refresh_token"] = self._issue_refresh(grant)
            return body

    def revoke(self, token: str) -> bool:
        """Revoke the grant behind an access or refresh token; False when the token is unknown."""
        with self.lock:
            self.token_calls["revoke"] += 1
            at = self.access_tokens.get(token)
            grant_id = at.grant_id if at is not None and not at.revoked else self.refresh_tokens.get(token)
            grant = self.grants.get(grant_id or "")
            if grant is None or grant.revoked:
                return False
            self._revoke_grant(grant)
            return True

    def authenticate(self, token: str | None) -> AccessToken | None:
        """The live access token, or None when unknown, expired or revoked."""
        if not token:
            return None
        with self.lock:
            at = self.access_tokens.get(token)
            if at is None or at.revoked or self.clock() >= at.expires_at:
                return None
            return at

    def peek_mailbox(self, token: str | None) -> str | None:
        """The mailbox a token names, valid or not (for attributing counters)."""
        at = self.access_tokens.get(token or "")
        return at.mailbox if at is not None else None

    def revoke_mailbox_tokens(self, mailbox: str) -> int:
        """Revoke every grant of a mailbox (the user removed the app); returns how many."""
        with self.lock:
            n = 0
            for grant in self.grants.values():
                if grant.mailbox == mailbox.lower() and not grant.revoked:
                    self._revoke_grant(grant)
                    n += 1
            return n

    def expire_access_tokens(self, mailbox: str | None = None) -> int:
        """Make live access tokens expire now (refresh tokens stay valid)."""
        with self.lock:
            now = self.clock()
            n = 0
            for at in self.access_tokens.values():
                if (mailbox is None or at.mailbox == mailbox.lower()) and at.expires_at > now:
                    at.expires_at = now
                    n += 1
            return n

    # -- mailboxes -----------------------------------------------------------------------------------
    def mailbox(self, email: str) -> Mailbox:
        """The live mailbox (KeyError when absent). Hold `lock` while reading it from another thread."""
        return self.mailboxes[email.lower()]

    def add_mailbox(self, email: str, messages: Iterable[MailMessage] = ()) -> Mailbox:
        with self.lock:
            box = Mailbox(email.lower(), messages)
            self.mailboxes[email.lower()] = box
            return box

    def messages(self, email: str) -> list[MailMessage]:
        """A snapshot of the live messages of a mailbox, oldest first, with their live labels."""
        with self.lock:
            entries = sorted(self.mailbox(email).entries.values(), key=lambda e: (e.msg.internal_date_ms, e.msg.id))
            return [
                e.msg if e.label_ids == e.msg.label_ids else dataclasses.replace(e.msg, label_ids=e.label_ids)
                for e in entries
            ]

    def _after_mutation(self, box: Mailbox) -> None:
        box.trim_history(self._history_retention)

    def add_message(self, mailbox: str, message: MailMessage) -> str:
        """Store a message copy (empty id/thread_id get assigned); returns its Gmail id."""
        with self.lock:
            box = self.mailbox(mailbox)
            entry = box.add(message)
            self._after_mutation(box)
            return entry.msg.id

    def deliver(
        self,
        *,
        sender: str,
        to: Sequence[str] = (),
        cc: Sequence[str] = (),
        bcc: Sequence[str] = (),
        subject: str = "Hello",
        snippet: str = "",
        date: str | None = "now",
        message_id: str | None = None,
        in_reply_to: str | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
        internal_date_ms: int | None = None,
    ) -> dict[str, str]:
        """Send one new email: a copy lands in every emulated mailbox among its participants.

        Addresses are raw header text ("Name <a@b>"). `date="now"` writes the current time; None omits
        the header. Returns {mailbox: gmail id}.
        """
        with self.lock:
            now_ms = internal_date_ms if internal_date_ms is not None else int(self.clock() * 1000)
            roles = member_roles(self.mailboxes.keys(), sender, to, cc, bcc)
            newest = max((self.mailbox(m).order()[0][0] * -1 for m in roles if self.mailbox(m).entries), default=0)
            if internal_date_ms is None:
                now_ms = max(now_ms, newest + 1000)
            if date == "now":
                date = mailgen.format_date(datetime.fromtimestamp(now_ms / 1000, UTC), 0)
            domain = sender.rsplit("@", 1)[-1].strip(">").strip() or "sandbox.test"
            mid = message_id or mailgen.message_id(self._rng, domain, now_ms)
            sender_copy, rcpt_copy = compose_headers(
                sender=sender,
                to=to,
                cc=cc,
                bcc=bcc,
                subject=subject,
                date=date,
                message_id=mid,
                in_reply_to=in_reply_to,
                references=in_reply_to,
                extra=extra_headers,
            )
            ids: dict[str, str] = {}
            for owner, (is_sender, is_rcpt) in roles.items():
                msg = MailMessage(
                    id="",
                    thread_id="",
                    label_ids=copy_labels(
                        self._rng, is_sender=is_sender, is_recipient=is_rcpt, category="CATEGORY_PERSONAL"
                    ),
                    internal_date_ms=now_ms,
                    headers=sender_copy if is_sender else rcpt_copy,
                    size_estimate=2048 + len(snippet),
                    snippet=snippet or subject,
                )
                ids[owner] = self.add_message(owner, msg)
            return ids

    def deliver_generated(self, count: int = 1) -> list[dict[str, str]]:
        """Deliver `count` new plausible emails between a member and a person of the world (seeded)."""
        with self.lock:
            rng = self._rng
            members = sorted(self.mailboxes)
            people = [p for p in self.world.people if not p.colleague] if self.world is not None else []
            names = self.world.member_names if self.world is not None else {}
            out: list[dict[str, str]] = []
            for _ in range(count):
                member = rng.choice(members)
                me = mailgen.mailbox(names.get(member, ""), member, rng)
                if people:
                    person = rng.choice(people)
                    other = mailgen.mailbox(person.name, person.email, rng)
                else:
                    other = "Dana Reyes <dana@globex.test>"
                sender, to = (me, [other]) if rng.random() < 0.5 else (other, [me])
                cc = [rng.choice(members)] if len(members) > 1 and rng.random() < 0.2 else []
                subject = rng.choice(vocab.SUBJECTS).format(
                    q=rng.randint(1, 4), company="you", n=rng.randint(1000, 9999), day="Friday", v=2
                )
                snippet = rng.choice(vocab.SNIPPETS).format(first="there", day="Friday")
                out.append(self.deliver(sender=sender, to=to, cc=cc, subject=subject, snippet=snippet))
            return out

    def delete_message(self, mailbox: str, message_id: str) -> bool:
        """Permanently delete (messageDeleted in history)."""
        with self.lock:
            box = self.mailbox(mailbox)
            ok = box.delete(message_id)
            self._after_mutation(box)
            return ok

    def modify_labels(
        self, mailbox: str, message_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> Entry | None:
        with self.lock:
            box = self.mailbox(mailbox)
            entry = box.modify(message_id, add, remove)
            self._after_mutation(box)
            return entry

    def trash_message(self, mailbox: str, message_id: str) -> bool:
        """Move to Trash (labelAdded TRASH); hidden from list unless includeSpamTrash."""
        return self.modify_labels(mailbox, message_id, add=("TRASH",), remove=("INBOX",)) is not None

    def expire_history(self, mailbox: str | None = None) -> None:
        """Drop history so any earlier startHistoryId gets 404 (forces the full-resync path)."""
        with self.lock:
            for box in self.mailboxes.values() if mailbox is None else [self.mailbox(mailbox)]:
                box.expire_history()

    # -- counters --------------------------------------------------------------------------------------
    def stats_snapshot(self) -> dict[str, Any]:
        """Counters: HTTP calls by kind, ops, quota units, per mailbox, faults, token-grant calls."""
        snap = self.stats.snapshot()
        snap["faults"] = self.faults.snapshot()
        snap["early_retries"] = snap["faults"]["early_retries"]
        with self.lock:
            snap["token_calls"] = dict(self.token_calls)
            now = self.clock()
            snap["live_access_tokens"] = sum(
                1 for t in self.access_tokens.values() if not t.revoked and t.expires_at > now
            )
            snap["grants"] = {
                "active": sum(1 for g in self.grants.values() if not g.revoked),
                "revoked": sum(1 for g in self.grants.values() if g.revoked),
            }
        return snap

    def reset_stats(self) -> None:
        with self.lock:
            self.stats.reset()
            self.faults.reset_counters()
            self.token_calls.clear()

    def mailbox_summary(self) -> dict[str, Mapping[str, Any]]:
        with self.lock:
            return {
                email: {
                    "messages": len(box.entries),
                    "historyId": str(box.history_id),
                    "historyFloor": str(box.floor),
                    "historyRecords": len(box.history),
                }
                for email, box in self.mailboxes.items()
            }
