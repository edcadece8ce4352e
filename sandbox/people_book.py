"""Each member's address book and "other contacts" generated from the World's mail (deterministic per seed).

The book holds most of the people the member mails with: names, companies, phones in the world's many
formats (some with an extension), a few with both of their addresses (tying identities), a few with a
phone only, a few entered twice, one with a broken address beside a good one, and two colleagues. Other
contacts are people who wrote to the member and are not in the book.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable

from sandbox.people_data import correspondents
from sandbox.people_store import PeopleStore
from sandbox.world import Person, World

TITLES = ("VP Sales", "Head of IT", "CFO", "Procurement Lead", "Engineering Manager", "", "")
_DOTTED = re.compile(r"^\d{3}\.\d{3}\.\d{4}$")


def _phones(person: Person, rng: random.Random) -> tuple[str, ...]:
    phone = person.phone
    if _DOTTED.match(phone) and rng.random() < 0.5:
        phone = f"{phone} x{rng.randint(10, 99)}"
    return (phone,) if rng.random() < 0.85 else ()


def _fill(store: PeopleStore, world: World, member: str, rng: random.Random) -> None:
    mail = correspondents(world)[member]
    known = list(mail.people[: max(10, int(len(mail.people) * 0.6))])
    in_book = {p.id for p in known}
    extra = [p for p in world.people if not p.colleague and p.id not in in_book]
    known += rng.sample(extra, min(5, len(extra))) + [p for p in world.people if p.colleague][:2]
    two = next((p for p in known if len(p.emails) > 1), None)
    for index, person in enumerate(known):
        emails: tuple[str, ...] = (person.emails[0],)
        phones = _phones(person, rng)
        if person is two or (len(person.emails) > 1 and rng.random() < 0.5):
            emails = person.emails
        if index == 1 or rng.random() < 0.04:  # a phone number only
            emails, phones = (), (person.phone,)
        if index == 2:
            emails += (f"{person.first_name.lower()} at {person.company_domain}",)
        name = person.name if rng.random() > 0.03 else ""
        store.add_contact(
            member, name=name, emails=emails, phones=phones, company=person.company, title=rng.choice(TITLES)
        )
        if index == 3 or rng.random() < 0.03:  # entered twice, by a different address or just the phone
            again = person.emails[-1:] if len(person.emails) > 1 else ()
            store.add_contact(member, name=f"{person.last_name}, {person.first_name}", emails=again,
                              phones=(person.phone,))  # fmt: skip
    for person in [p for p in mail.senders if p.id not in in_book][:300]:
        name = person.name if rng.random() < 0.6 else ""
        store.add_contact(member, name=name, emails=person.emails[:1], book="other")


def people_store(world: World, *, lock: threading.RLock, clock: Callable[[], float]) -> PeopleStore:
    """A fresh store holding every member's generated address book and other contacts."""
    store = PeopleStore(lock=lock, clock=clock, seed=world.seed)
    rng = random.Random(f"{world.seed}:people")
    for member in world.members:
        store.book(member, "connections")
        store.book(member, "other")
        _fill(store, world, member, rng)
    return store
