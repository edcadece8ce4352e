"""Signed webhooks reach a real HTTP receiver on loopback when a connection is paused, needs reauth, recovers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from models.tables import Connection
from sync.ops_actions import pause_connection, resume_connection
from tests.ops_ui.conftest import DOMAIN, MEMBERS, ORG, connection_id, set_state, small_world
from web.stack import running_stack
from web.webhooks import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    ConnectionWatch,
    Notifier,
    WebhookConfig,
    signature,
    verify,
)

SECRET = "whsec-test-secret"


class Receiver:
    """A loopback HTTP server that records what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/sxsync"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for headers, body in self.received:
            assert verify(SECRET, headers[SIGNATURE_HEADER], body), "bad signature"
            event = json.loads(body)
            assert headers[EVENT_HEADER] == event["event"]
            out.append(event)
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()


def test_signature_binds_body_and_time() -> None:
    header = signature(SECRET, 1_700_000_000, b'{"a":1}')
    assert verify(SECRET, header, b'{"a":1}', now=1_700_000_100)
    assert not verify(SECRET, header, b'{"a":2}', now=1_700_000_100)
    assert not verify("other", header, b'{"a":1}', now=1_700_000_100)
    assert not verify(SECRET, header, b'{"a":1}', now=1_700_009_999)  # too old: a replay


def test_pause_reauth_and_recovery_are_announced_signed(tmp_path: Path, receiver: Receiver) -> None:
    with running_stack(data_dir=tmp_path, world=small_world(size=60)) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        stack.connect(ORG, MEMBERS[0])
        assert stack.sync().failed == 0
        notifier = Notifier(WebhookConfig(receiver.url, SECRET), background=False)
        watch = ConnectionWatch(notifier)
        gmail = connection_id(stack, MEMBERS[0], "gmail")
        calendar = connection_id(stack, MEMBERS[0], "google_calendar")
        assert watch.observe(stack.rt) == []  # the baseline
        pause_connection(stack.rt, gmail, actor="ops:test", notify=notifier.notify)
        with stack.rt.writes.begin() as session:
            session.execute(update(Connection).where(Connection.id == calendar).values(status="reauth_required"))
        assert watch.observe(stack.rt) == [("connection.reauth_required", calendar)]
        assert watch.observe(stack.rt) == []  # announced once
        with stack.rt.writes.begin() as session:
            session.execute(update(Connection).where(Connection.id == calendar).values(status="active"))
        set_state(stack, calendar, "events", failed=True)
        assert watch.observe(stack.rt) == []  # reauth -> failing is not a recovery
        set_state(stack, calendar, "events", failed=False)
        assert watch.observe(stack.rt) == [("connection.recovered", calendar)]
        resume_connection(stack.rt, gmail, actor="ops:test", notify=notifier.notify)
        events = receiver.events()
        assert [(e["event"], e["connection"]["id"]) for e in events] == [
            ("connection.paused", gmail),
            ("connection.reauth_required", calendar),
            ("connection.recovered", calendar),
            ("connection.recovered", gmail),
        ]
        assert events[1]["org"] == ORG and events[1]["connection"]["member"] == MEMBERS[0]
        raw = b"".join(body for _, body in receiver.received)
        for token in [*stack.sandbox.google.access_tokens, *stack.sandbox.google.refresh_tokens]:
            assert token.encode() not in raw
