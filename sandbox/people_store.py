"""The People emulator's live state: each member's contacts and "other contacts", with change tracking.

Books are "connections" (the address book) and "other" (Google's auto-saved other contacts). Every
change stamps the contact with the next counter value; a deleted contact stays as a tombstone so a sync
token older than the deletion reports it (metadata.deleted), as People does.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.gcal_tokens import ChangeLog

BOOKS = ("connections", "other")
_PREFIX = {"connections": "people/c", "other": "otherContacts/c"}
_EDITABLE = frozenset({"name", "emails", "phones", "company", "title"})


@dataclass(slots=True)
class Contact:
    """One address-book entry (or other contact) of one member."""

    resource_name: str
    name: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    company: str = ""
    title: str = ""
    seq: int = 0
    updated: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))
    deleted: bool = False


class PeopleStore:
    """Books by (member, book); every public method is thread-safe under the shared lock."""

    def __init__(self, *, lock: threading.RLock, clock: Callable[[], float], seed: int = 0) -> None:
        self.lock = lock
        self.clock = clock
        self.books: dict[tuple[str, str], dict[str, Contact]] = {}
        self.changes = ChangeLog()
        self._rng = random.Random(f"{seed}:people-ids")

    @property
    def seq(self) -> int:
        return self.changes.seq

    def book(self, member: str, book: str) -> dict[str, Contact]:
        if book not in BOOKS:
            raise ValueError(f"no book {book!r}; one of {BOOKS}")
        return self.books.setdefault((member.lower(), book), {})

    def _stamp(self, contact: Contact) -> Contact:
        contact.seq = self.changes.tick()
        contact.updated = datetime.fromtimestamp(self.clock(), UTC)
        return contact

    def add_contact(
        self,
        member: str,
        *,
        name: str = "",
        emails: Iterable[str] = (),
        phones: Iterable[str] = (),
        company: str = "",
        title: str = "",
        book: str = "connections",
    ) -> str:
        """A new contact; returns its resourceName (people/c… or otherContacts/c…)."""
        with self.lock:
            entries = self.book(member, book)
            resource_name = f"{_PREFIX[book]}{self._rng.randrange(10**18, 10**19)}"
            while resource_name in entries:
                resource_name = f"{_PREFIX[book]}{self._rng.randrange(10**18, 10**19)}"
            contact = Contact(resource_name, name, tuple(emails), tuple(phones), company, title)
            entries[resource_name] = self._stamp(contact)
            return resource_name

    def edit_contact(self, member: str, resource_name: str, **changes: Any) -> Contact:
        """Change fields of a live contact (KeyError when absent or deleted)."""
        unknown = set(changes) - _EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        with self.lock:
            contact = self._live(member, resource_name)
            for key, value in changes.items():
                setattr(contact, key, tuple(value) if key in ("emails", "phones") else value)
            return self._stamp(contact)

    def delete_contact(self, member: str, resource_name: str) -> None:
        """Delete a contact: a tombstone the next incremental listing reports."""
        with self.lock:
            contact = self._live(member, resource_name)
            contact.deleted = True
            self._stamp(contact)

    def _live(self, member: str, resource_name: str) -> Contact:
        book = "other" if resource_name.startswith("otherContacts/") else "connections"
        contact = self.book(member, book).get(resource_name)
        if contact is None or contact.deleted:
            raise KeyError(resource_name)
        return contact

    def expire_sync_tokens(self, member: str | None = None) -> None:
        """Every sync token issued so far (for one member, or all) now answers EXPIRED_SYNC_TOKEN."""
        with self.lock:
            members = [member.lower()] if member else sorted({m for m, _ in self.books})
            self.changes.expire([f"{m}/{b}" for m in members for b in BOOKS])

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                f"{member}/{book}": sum(1 for c in entries.values() if not c.deleted)
                for (member, book), entries in self.books.items()
            }
