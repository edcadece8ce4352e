"""Who each member mails with, read from the World's mailboxes, so calendars and address books reuse them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from email.utils import getaddresses

from sandbox.world import Person, World

_CACHE: dict[int, tuple[World, dict[str, Correspondents]]] = {}
_CACHE_SIZE = 4


@dataclass(frozen=True, slots=True)
class Correspondents:
    """A member's external correspondents, most frequent first, and those who wrote to the member."""

    people: tuple[Person, ...]
    senders: tuple[Person, ...]


def _scan(world: World, member: str, by_email: dict[str, Person]) -> Correspondents:
    counts: Counter[str] = Counter()
    senders: Counter[str] = Counter()
    for msg in world.mailboxes.get(member, ()):
        for name in ("From", "To", "Cc"):
            for _, addr in getaddresses(msg.header_values(name)):
                person = by_email.get(addr.lower())
                if person is None or person.colleague:
                    continue
                counts[person.id] += 1
                if name == "From":
                    senders[person.id] += 1
    by_id = {p.id: p for p in by_email.values()}

    def ranked(counter: Counter[str]) -> tuple[Person, ...]:
        return tuple(by_id[pid] for pid in sorted(counter, key=lambda pid: (-counter[pid], pid)))

    return Correspondents(ranked(counts), ranked(senders))


def correspondents(world: World) -> dict[str, Correspondents]:
    """Per member (cached per world object: every sandbox on one world shares the scan)."""
    cached = _CACHE.get(id(world))
    if cached is not None and cached[0] is world:
        return cached[1]
    by_email = {email.lower(): p for p in world.people for email in p.emails}
    result = {m: _scan(world, m, by_email) for m in world.members}
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[id(world)] = (world, result)
    return result
