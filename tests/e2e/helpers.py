"""The end-to-end suite's world, store readers and comparisons with the oracle (fixtures: conftest.py)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from models.network import iter_contacts, org_by_slug, read_feed
from models.tables import Activity, Rejected
from sandbox.world import MailMessage, World, generate_world
from tests.e2e.oracle import HIDDEN_LABELS, REASONS, Expected, expected_network, message_key, parse_date
from web.stack import Stack

ORG = "acme"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
CONNECTED = MEMBERS[:2]  # carol is a member (interactions are attributed to her) but never connects
SEED = 5
SIZE = 600
API_KEY = "test-key"
OTHER_ORG_KEY = "globex-key"
ID_LESS = 3  # multi-copy messages whose Message-ID the fixture strips (the product must still collapse them)


def make_world() -> World:
    """The fixed-seed world, with a few multi-mailbox messages stripped of their Message-ID."""
    world = generate_world(seed=SEED, size=SIZE, org_domain=DOMAIN, members=MEMBERS)
    copies: dict[str, list[tuple[str, int]]] = {}
    for owner in CONNECTED:
        for index, msg in enumerate(world.mailboxes[owner]):
            if msg.message_id and parse_date(msg.header("Date")) is not None:
                copies.setdefault(msg.message_id, []).append((owner, index))
    shared = [mid for mid, where in copies.items() if len(where) == len(CONNECTED)]
    for mid in shared[-ID_LESS:]:  # recent ones (inside the backfill window), with a usable Date
        for owner in world.members:
            box = world.mailboxes[owner]
            for index, msg in enumerate(box):
                if msg.message_id == mid:
                    headers = tuple(h for h in msg.headers if h[0].lower() != "message-id")
                    box[index] = dataclasses.replace(msg, headers=headers)
    return world


def sync_ok(stack: Stack) -> None:
    """Sync every connection and insist that no chain failed."""
    final = stack.sync(timeout=120)
    assert final.failed == 0, f"{final.failed} sync streams failed"
    assert final.running == 0


def live_copies(stack: Stack, mailboxes: Sequence[str] = CONNECTED) -> dict[str, list[MailMessage]]:
    """The sandbox's current messages of the connected mailboxes, with their current labels."""
    state = stack.sandbox.google
    with state.lock:
        return {
            email: [
                dataclasses.replace(entry.msg, label_ids=entry.label_ids)
                for entry in state.mailbox(email).entries.values()
            ]
            for email in mailboxes
        }


def oracle(stack: Stack) -> Expected:
    """What the rules say the store should hold, from the sandbox's live state."""
    return expected_network(
        live_copies(stack),
        members=MEMBERS,
        org_domains=(DOMAIN,),
        now=stack.rt.clock(),
        backfill_days=stack.rt.settings.backfill_days,
    )


def org_id(stack: Stack) -> int:
    with stack.rt.sessions() as session:
        org = org_by_slug(session, ORG)
        assert org is not None
        return org.id


def store_contacts(stack: Stack) -> list[dict[str, Any]]:
    """`iter_contacts`: what `sxsync contacts --json` prints."""
    with stack.rt.sessions() as session:
        return list(iter_contacts(session, org_id(stack)))


def feed_position(stack: Stack) -> str:
    """The feed's `next` cursor after reading it all."""
    with stack.rt.sessions() as session:
        oid, after = org_id(stack), None
        while True:
            page = read_feed(session, oid, after, 1000)
            after = page.next
            if not page.has_more:
                return after


def activity_counts(stack: Stack) -> tuple[int, int]:
    """(activities, noise activities) of the org."""
    oid = org_id(stack)
    with stack.rt.sessions() as session:
        total = session.execute(select(func.count()).select_from(Activity).where(Activity.org_id == oid)).scalar_one()
        noise = session.execute(
            select(func.count()).select_from(Activity).where(Activity.org_id == oid, Activity.noise.is_not(None))
        ).scalar_one()
    return int(total), int(noise)


def rejected_rows(stack: Stack) -> list[tuple[str, str, str]]:
    """(external id, reason, detail) of every rejected record of the org."""
    oid = org_id(stack)
    with stack.rt.sessions() as session:
        return [
            (ext, reason, detail)
            for ext, reason, detail in session.execute(
                select(Rejected.external_id, Rejected.reason, Rejected.detail).where(Rejected.org_id == oid)
            )
        ]


def _tie(rel: dict[str, Any]) -> tuple[Any, ...]:
    i = rel["interactions"]
    return (i["email_out"], i["email_in"], i["meeting"], i["call"], rel["first_at"], rel["last_at"])


def network_differences(contacts: list[dict[str, Any]], expected: Expected) -> list[str]:
    """Human-readable differences between the store's contacts and the oracle's (empty: equal)."""
    problems: list[str] = []
    by_email: dict[str, dict[str, Any]] = {}
    for contact in contacts:
        if len(contact["emails"]) != 1:
            problems.append(f"contact {contact['id']} has emails {contact['emails']} (mail alone never joins)")
        for email in contact["emails"]:
            by_email[email] = contact
    missing = sorted(set(expected.contacts) - set(by_email))
    extra = sorted(set(by_email) - set(expected.contacts))
    if missing:
        problems.append(f"missing contacts: {missing}")
    if extra:
        problems.append(f"unexpected contacts: {extra}")
    for email in sorted(set(expected.contacts) & set(by_email)):
        want, got = expected.contacts[email], by_email[email]
        if got["name"] != want.name:
            problems.append(f"{email}: name {got['name']!r}, expected {want.name!r}")
        if got["company_domain"] != want.company_domain:
            problems.append(f"{email}: company_domain {got['company_domain']!r}, expected {want.company_domain!r}")
        if got["phones"] or got["merged_ids"]:
            problems.append(f"{email}: phones/merged_ids {got['phones']}/{got['merged_ids']} from mail alone")
        got_ties = {rel["member"]: rel for rel in got["relationships"]}
        if set(got_ties) != set(want.ties):
            problems.append(f"{email}: relationships with {sorted(got_ties)}, expected {sorted(want.ties)}")
        for member in sorted(set(got_ties) & set(want.ties)):
            tie = want.ties[member]
            expected_tie = (tie.email_out, tie.email_in, 0, 0, tie.first_at(), tie.last_at())
            if _tie(got_ties[member]) != expected_tie:
                problems.append(
                    f"{email}/{member}: (out, in, meeting, call, first, last) {_tie(got_ties[member])}"
                    f", expected {expected_tie}"
                )
            strength = got_ties[member]["strength"]
            if not math.isclose(strength, tie.strength(expected.now), abs_tol=2e-6):
                problems.append(f"{email}/{member}: strength {strength}, expected {tie.strength(expected.now):.6f}")
    return problems


def assert_matches_oracle(stack: Stack, expected: Expected | None = None) -> Expected:
    """The store's network, activities and noise flags equal the oracle's."""
    expected = expected or oracle(stack)
    problems = network_differences(store_contacts(stack), expected)
    assert not problems, "store differs from the oracle:\n  " + "\n  ".join(problems[:40])
    assert activity_counts(stack) == (len(expected.activities), len(expected.noise))
    return expected


def when_ms(moment: datetime, minutes_before: int) -> int:
    """Epoch milliseconds `minutes_before` the moment."""
    return int(moment.timestamp() * 1000) - minutes_before * 60_000


def assert_rejections_match(stack: Stack, expected: Expected) -> None:
    rows = rejected_rows(stack)
    assert {(ext, detail) for ext, _, detail in rows} == expected.rejected
    assert {reason for _, reason, _ in rows} <= REASONS


def copies_by_key(stack: Stack, mailboxes: Sequence[str] = MEMBERS) -> dict[str, list[tuple[str, MailMessage]]]:
    """Every live copy of each message (by the oracle's key), in the given mailboxes."""
    found: dict[str, list[tuple[str, MailMessage]]] = {}
    for mailbox, messages in live_copies(stack, mailboxes).items():
        for msg in messages:
            found.setdefault(message_key(msg), []).append((mailbox, msg))
    return found


def in_both_connected(copies: list[tuple[str, MailMessage]]) -> bool:
    """Visible copies in every connected mailbox."""
    visible = {mailbox for mailbox, msg in copies if not HIDDEN_LABELS & set(msg.label_ids)}
    return set(CONNECTED) <= visible


def sole_evidence_key(expected: Expected, stack: Stack) -> tuple[str, str]:
    """(contact email, activity key) where that non-noise activity, seen in both connected mailboxes, is the
    contact's only evidence."""
    copies = copies_by_key(stack)
    for email in sorted(expected.evidence):
        keys = expected.evidence[email]
        if len(keys) == 1:
            (key,) = keys
            if in_both_connected(copies[key]):
                return email, key
    raise AssertionError("the fixed world has no contact evidenced by one shared message")


def delete_everywhere(stack: Stack, key: str) -> int:
    """Permanently delete every copy of one message, in every mailbox; returns how many."""
    copies = copies_by_key(stack)[key]
    for mailbox, msg in copies:
        assert stack.sandbox.google.delete_message(mailbox, msg.id)
    return len(copies)
