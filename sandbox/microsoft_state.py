"""What the Microsoft emulator holds: identity, each member's mail/calendar/contacts, knobs, faults, counters."""

from __future__ import annotations

import random
import threading
from typing import Any

from sandbox import graph_mailgen, microsoft_meetings
from sandbox.faults import FaultInjector
from sandbox.graph_delta import DeltaStore
from sandbox.microsoft_identity import Identity
from sandbox.microsoft_meetings import Meeting
from sandbox.microsoft_shared_meetings import google_calendars
from sandbox.stats import Stats
from sandbox.world import World

MAIL = {"inbox": "mail:inbox", "sentitems": "mail:sentitems"}
EVENTS, MASTERS, CONTACTS = "events", "masters", "contacts"

# knob name -> (owner attribute path, type)
KNOBS: dict[str, tuple[str, type]] = {
    "access_token_ttl": ("identity", int),
    "code_ttl": ("identity", int),
    "old_refresh_token_uses": ("identity", int),
    "require_pkce": ("identity", bool),
    "deny_consent": ("identity", bool),
    "max_sync_states": ("store", int),
    "default_page_size": ("self", int),
    "max_page_size": ("self", int),
    "max_batch_requests": ("self", int),
}


class MicrosoftState:
    """In-process handle on the emulator; mutation methods are what tests and /_sandbox/microsoft call."""

    def __init__(self, world: World, *, seed: int = 0) -> None:
        self.world = world
        self.identity = Identity(dict(world.member_names) or {m: m for m in world.members}, seed=seed)
        for member in world.members:
            self.identity.users.setdefault(member, member)
        self._store: DeltaStore | None = None
        self._store_lock = threading.Lock()
        self.faults = FaultInjector(seed)
        self.stats = Stats()
        self.default_page_size = 10
        self.max_page_size = 1000
        self.max_batch_requests = 20
        self._rng = random.Random(seed)

    @property
    def store(self) -> DeltaStore:
        """Every member's mail, calendar and contacts, seeded on first use: a big world's meetings take
        minutes (every member meets every other), and a run that never calls Graph should not wait for them."""
        store = self._store
        if store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = self._seeded()
                store = self._store
        return store

    def _seeded(self) -> DeltaStore:
        store = DeltaStore()
        meetings = microsoft_meetings.world_meetings(self.world)
        google = google_calendars(self.world)
        for member in self.world.members:
            self._seed_member(store, member, meetings, google.get(member, []))
        return store

    def _seed_member(self, store: DeltaStore, member: str, meetings: list[Meeting], google: list[Any]) -> None:
        people = graph_mailgen.correspondents(self.world, member)
        for folder, message in graph_mailgen.mailbox(self.world, member, people):
            store.put(member, MAIL[folder], message["id"], message)
        for kind, event in microsoft_meetings.outlook_events(member, meetings, google):
            store.put(member, MASTERS if kind == "master" else EVENTS, event["id"], event)
        for contact in graph_mailgen.contacts(self.world, member, people):
            store.put(member, CONTACTS, contact["id"], contact)

    # -- knobs -----------------------------------------------------------------------------------
    def configure(self, **knobs: Any) -> None:
        """Set knobs by name (see KNOBS)."""
        for name, value in knobs.items():
            if name not in KNOBS:
                raise ValueError(f"unknown knob {name!r}; known: {sorted(KNOBS)}")
            owner, kind = KNOBS[name]
            target = self if owner == "self" else getattr(self, owner)
            setattr(target, name, None if value is None and name == "old_refresh_token_uses" else kind(value))

    def knobs(self) -> dict[str, Any]:
        return {n: getattr(self if o == "self" else getattr(self, o), n) for n, (o, _) in KNOBS.items()}

    # -- mutations -------------------------------------------------------------------------------
    def add_message(self, user: str, folder: str, message: dict[str, Any]) -> str:
        """Deliver (or update) a message in inbox or sentitems; returns its id."""
        message = {"parentFolderId": folder, "isDraft": False, **message}
        message.setdefault("id", graph_mailgen.graph_id(user, "new", str(self._rng.getrandbits(64))))
        self.store.put(user.lower(), MAIL[folder], message["id"], message)
        return str(message["id"])

    def delete_message(self, user: str, folder: str, message_id: str) -> bool:
        return self.store.delete(user.lower(), MAIL[folder], message_id)

    def add_bulk_messages(self, user: str, folder: str, count: int, *, start_ms: int | None = None) -> list[str]:
        """`count` generated messages with distinct internetMessageIds (paging and call-count tests)."""
        base = start_ms if start_ms is not None else int(self.world.now.timestamp() * 1000) - count * 60_000
        ids = []
        for i in range(count):
            when = graph_mailgen.iso(base + i * 60_000)
            ids.append(
                self.add_message(
                    user,
                    folder,
                    {
                        "id": graph_mailgen.graph_id(user, "bulk", folder, str(i), str(base)),
                        "internetMessageId": f"<bulk-{i}-{base}@sandbox.outlook.test>",
                        "subject": f"Bulk {i}",
                        "from": {"emailAddress": {"name": "Dana Reyes", "address": "dana@globex.test"}},
                        "sender": {"emailAddress": {"name": "Dana Reyes", "address": "dana@globex.test"}},
                        "toRecipients": [{"emailAddress": {"name": user, "address": user}}],
                        "ccRecipients": [],
                        "bccRecipients": [],
                        "receivedDateTime": when,
                        "sentDateTime": when,
                    },
                )
            )
        return ids

    def put_event(self, user: str, event: dict[str, Any], *, master: bool = False) -> str:
        """Create or replace an event (or a series master, served by GET /me/events/{id})."""
        self.store.put(user.lower(), MASTERS if master else EVENTS, event["id"], event)
        return str(event["id"])

    def cancel_event(self, user: str, event_id: str) -> bool:
        """The organizer cancels: the event stays in the calendar with isCancelled true."""
        event = self.store.get(user.lower(), EVENTS, event_id)
        if event is None:
            return False
        self.store.put(user.lower(), EVENTS, event_id, {**event, "isCancelled": True})
        return True

    def delete_event(self, user: str, event_id: str) -> bool:
        return self.store.delete(user.lower(), EVENTS, event_id)

    def put_contact(self, user: str, contact: dict[str, Any]) -> str:
        self.store.put(user.lower(), CONTACTS, contact["id"], contact)
        return str(contact["id"])

    def delete_contact(self, user: str, contact_id: str) -> bool:
        return self.store.delete(user.lower(), CONTACTS, contact_id)

    def reset_sync_state(self, user: str) -> None:
        """Tenant maintenance: every delta/skip token of `user` answers 410 resyncRequired."""
        self.store.reset(user.lower())

    def forget_sync_states(self) -> None:
        """The delta token cache lost everything: every token answers 410 syncStateNotFound."""
        self.store.forget_states()

    def live(self, user: str, collection: str) -> list[dict[str, Any]]:
        """Current items of a collection ("mail:inbox", "mail:sentitems", "events", "masters", "contacts")."""
        return self.store.live(user.lower(), collection)
