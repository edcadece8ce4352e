"""Signed webhooks to the main app when a connection needs re-authorization, is paused or recovers.

Optional: nothing is sent unless `SXSYNC_WEBHOOK_URL` is set. Each POST carries a JSON body and
`X-SXSync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under SXSYNC_WEBHOOK_SECRET>`
(the timestamp inside the MAC lets the receiver refuse replays). The body names the connection, its
org, provider and rep, never a token or an error's raw text. Delivery runs on a background thread
with a few retries, so an unreachable receiver never slows a page view or an ops action.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from sqlalchemy import select

from models.network import iso
from models.rls import system_wide
from models.settings import Settings
from models.tables import Connection, Member, Org, SyncState
from sync.runtime import Runtime

log = logging.getLogger("sxsync.webhooks")
SIGNATURE_HEADER = "X-SXSync-Signature"
EVENT_HEADER = "X-SXSync-Event"
TRIES = 3
TIMEOUT = 5.0


@dataclass(frozen=True)
class WebhookConfig:
    """Where to send, and the shared secret that signs."""

    url: str
    secret: str


def webhook_config(settings: Settings) -> WebhookConfig | None:
    """`SXSYNC_WEBHOOK_URL` / `SXSYNC_WEBHOOK_SECRET`, or None when no webhook is configured."""
    url, secret = settings.webhook_url, settings.webhook_secret
    if not url:
        return None
    if not secret:
        log.warning("SXSYNC_WEBHOOK_URL is set without SXSYNC_WEBHOOK_SECRET: webhooks are not sent unsigned")
        return None
    return WebhookConfig(url, secret)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value: `t=…,v1=…`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, tolerance: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does: the MAC matches and the timestamp is recent."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def payload(event: str, connection: Connection, org: str, member: str | None, at: datetime) -> dict[str, Any]:
    """The JSON body: what happened to which connection (no token, no raw error)."""
    return {
        "event": event,
        "at": iso(at),
        "org": org,
        "connection": {
            "id": connection.id,
            "provider": connection.provider,
            "source": connection.source,
            "account": connection.account,
            "member": member,
            "status": connection.status,
        },
    }


def deliver(config: WebhookConfig, body: dict[str, Any], *, tries: int = TRIES, timeout: float = TIMEOUT) -> bool:
    """POST the signed body, retrying 5xx and network errors with a short backoff; True when accepted."""
    data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    session = requests.Session()
    session.trust_env = False
    for attempt in range(tries):
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: str(body.get("event", "")),
            SIGNATURE_HEADER: signature(config.secret, int(time.time()), data),
        }
        try:
            response = session.post(config.url, data=data, headers=headers, timeout=timeout)
            if response.status_code < 300:
                return True
            if response.status_code < 500 and response.status_code != 429:
                log.warning("webhook refused", extra={"status": response.status_code, "event": body.get("event")})
                return False
        except requests.RequestException as exc:
            log.warning("webhook unreachable", extra={"error": type(exc).__name__, "attempt": attempt + 1})
        time.sleep(min(4.0, 0.5 * 2**attempt))
    return False


class Notifier:
    """Sends webhooks in the background; `notify` matches `sync.ops_actions.Notify`."""

    def __init__(
        self,
        config: WebhookConfig,
        *,
        send: Callable[[WebhookConfig, dict[str, Any]], bool] = deliver,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        background: bool = True,
    ) -> None:
        self.config, self.send, self.clock, self.background = config, send, clock, background
        self.threads: list[threading.Thread] = []

    def notify(self, event: str, connection: Connection, org: str, member: str | None = None) -> None:
        """Queue one event for delivery."""
        body = payload(event, connection, org, member, self.clock())
        log.info("webhook", extra={"event": event, "connection": connection.id})
        if not self.background:
            self.send(self.config, body)
            return
        thread = threading.Thread(target=self.send, args=(self.config, body), daemon=True, name="sxsync-webhook")
        thread.start()
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]

    def join(self, timeout: float = 30.0) -> None:
        """Wait for deliveries in flight (tests, shutdown)."""
        for thread in list(self.threads):
            thread.join(timeout)


class ConnectionWatch:
    """Notices connections that came to need re-authorization, and those that recovered.

    Each `observe` compares every connection's condition (ok, failing, reauth_required, paused,
    revoked) with the previous observation: entering `reauth_required` sends
    `connection.reauth_required`; going from `reauth_required` or `failing` back to ok sends
    `connection.recovered`. The first observation is the baseline. Pausing and resuming are announced
    by the ops actions themselves (`connection.paused`, `connection.recovered`).
    """

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.seen: dict[int, str] | None = None
        self._lock = threading.Lock()

    @system_wide
    def observe(self, rt: Runtime) -> list[tuple[str, int]]:
        """One comparison; the events sent as (event, connection id)."""
        with rt.sessions() as session:
            failing = set(
                session.execute(select(SyncState.connection_id).where(SyncState.failed.is_(True)).distinct()).scalars()
            )
            rows = session.execute(
                select(Connection, Org.slug, Member.email)
                .join(Org, Org.id == Connection.org_id)
                .join(Member, Member.id == Connection.member_id)
            ).all()
        now: dict[int, str] = {}
        sent: list[tuple[str, int]] = []
        with self._lock:
            before = self.seen
            for connection, slug, email in rows:
                word = connection.status
                if word == "active":
                    word = "failing" if connection.id in failing else "ok"
                now[connection.id] = word
                if before is None or connection.id not in before:
                    continue
                previous = before[connection.id]
                event = None
                if word == "reauth_required" and previous != "reauth_required":
                    event = "connection.reauth_required"
                elif word == "ok" and previous in ("reauth_required", "failing"):
                    event = "connection.recovered"
                if event is not None:
                    self.notifier.notify(event, connection, slug, email)
                    sent.append((event, connection.id))
            self.seen = now
        return sent
