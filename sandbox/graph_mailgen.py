"""Each member's Outlook mailbox and address book, generated deterministically from the World.

A member's mailbox holds a stable ~60% of the copies in their Gmail (the same emails: same
internetMessageId, so copies seen through both providers, or in two reps' mailboxes, are one
activity), plus Outlook-only mail with the same external people. Contacts are people the member
corresponds with, with their emails, raw phone strings and company.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from sandbox import mailgen, vocab
from sandbox.world import MailMessage, Person, World

HIDDEN = frozenset({"SPAM", "TRASH", "DRAFT"})
FOLDERS = ("inbox", "sentitems")
_SHARE_PERCENT = 60
_EXTRA_PERCENT = 30


def graph_id(*parts: str) -> str:
    """A stable, Graph-looking item id (base64url of a hash, "AAMkAD" prefixed like Exchange ids)."""
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return "AAMkAD" + digest[:48] + "AAA="


def iso(ms: int | float) -> str:
    """Epoch milliseconds as Graph's UTC timestamp text."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decoded(text: str) -> str:
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def recipients(values: list[str]) -> list[dict[str, Any]]:
    """Raw address headers as Graph recipient objects (Exchange keeps whatever the header said)."""
    out: list[dict[str, Any]] = []
    for name, address in getaddresses(values):
        if address or name:
            out.append({"emailAddress": {"name": _decoded(name) or address, "address": address}})
    return out


def _sent(msg: MailMessage) -> str:
    date = msg.header("Date")
    try:
        parsed = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        return iso(msg.internal_date_ms)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_from_copy(owner: str, msg: MailMessage, folder: str) -> dict[str, Any]:
    """A Gmail copy's headers as the Graph message Exchange would show for the same email."""
    sender = recipients(msg.header_values("From"))
    headers = [{"name": k, "value": v} for k, v in msg.headers]
    return {
        "id": graph_id(owner, msg.id, folder),
        "internetMessageId": msg.message_id,
        "subject": _decoded(msg.header("Subject") or ""),
        "from": sender[0] if sender else None,
        "sender": sender[0] if sender else None,
        "toRecipients": recipients(msg.header_values("To")),
        "ccRecipients": recipients(msg.header_values("Cc")),
        "bccRecipients": recipients(msg.header_values("Bcc")),
        "receivedDateTime": iso(msg.internal_date_ms),
        "sentDateTime": _sent(msg),
        "parentFolderId": folder,
        "conversationId": graph_id(owner, msg.thread_id),
        "isDraft": False,
        "isRead": "UNREAD" not in msg.label_ids,
        "internetMessageHeaders": headers,
    }


def _shared(owner: str, key: str, percent: int) -> bool:
    digest = hashlib.sha256(f"{owner}\0{key}".encode()).digest()
    return digest[0] * 100 < percent * 256


def correspondents(world: World, owner: str) -> list[Person]:
    """External people in the owner's Gmail headers, in first-seen order."""
    by_email = {e: p for p in world.people if not p.colleague for e in p.emails}
    seen: dict[str, Person] = {}
    for msg in world.mailboxes.get(owner, ()):
        for _, address in getaddresses(msg.header_values("From") + msg.header_values("To") + msg.header_values("Cc")):
            person = by_email.get(address.lower())
            if person is not None:
                seen.setdefault(person.id, person)
    return list(seen.values())


def _extra(rng: random.Random, owner: str, owner_name: str, person: Person, when_ms: int) -> tuple[str, dict[str, Any]]:
    """One Outlook-only email between the owner and `person`, and the folder it sits in."""
    outbound = rng.random() < 0.5
    me = {"emailAddress": {"name": owner_name, "address": owner}}
    them = {"emailAddress": {"name": person.name, "address": rng.choice(person.emails)}}
    if rng.random() < 0.05:
        them = {"emailAddress": {"name": "Notifications", "address": f"noreply@{person.company_domain}"}}
        outbound = False
    folder = "sentitems" if outbound else "inbox"
    subject = rng.choice(vocab.SUBJECTS).format(
        q=rng.randint(1, 4),
        company=person.company or "you",
        n=rng.randint(1000, 99999),
        day=rng.choice(vocab.DAYS),
        v=2,
    )
    mid = mailgen.message_id(rng, "outlook.com", when_ms)
    return folder, {
        "id": graph_id(owner, mid, folder),
        "internetMessageId": mid,
        "subject": subject,
        "from": me if outbound else them,
        "sender": me if outbound else them,
        "toRecipients": [them] if outbound else [me],
        "ccRecipients": [],
        "bccRecipients": [],
        "receivedDateTime": iso(when_ms),
        "sentDateTime": iso(when_ms - rng.randint(1, 90) * 1000),
        "parentFolderId": folder,
        "conversationId": graph_id(owner, "conv", mid),
        "isDraft": False,
        "isRead": True,
        "internetMessageHeaders": [{"name": "Message-ID", "value": mid}, {"name": "Subject", "value": subject}],
    }


def mailbox(world: World, owner: str, people: list[Person]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(folder, Graph message) pairs of `owner`'s Outlook mailbox; `people` = correspondents(world, owner)."""
    copies = [m for m in world.mailboxes.get(owner, ()) if HIDDEN.isdisjoint(m.label_ids)]
    for msg in copies:
        if not msg.message_id or not _shared(owner, msg.message_id, _SHARE_PERCENT):
            continue
        if "INBOX" in msg.label_ids:
            yield "inbox", message_from_copy(owner, msg, "inbox")
        if "SENT" in msg.label_ids:
            yield "sentitems", message_from_copy(owner, msg, "sentitems")
    if not people or not copies:
        return
    rng = random.Random(f"{world.seed}:outlook:{owner}")
    name = world.member_names.get(owner, owner)
    span = max(copies[-1].internal_date_ms - copies[0].internal_date_ms, 1)
    for _ in range(len(copies) * _EXTRA_PERCENT // 100):
        when = copies[0].internal_date_ms + int(rng.random() * span)
        yield _extra(rng, owner, name, rng.choice(people), when)


def contacts(world: World, owner: str, people: list[Person]) -> Iterator[dict[str, Any]]:
    """`owner`'s Outlook contacts: some of the people they mail (`people`), with emails, phones and company."""
    rng = random.Random(f"{world.seed}:outlook-contacts:{owner}")
    for person in people:
        if rng.random() >= 0.4:
            continue
        emails = list(person.emails) if rng.random() < 0.7 else [person.email]
        mobile = rng.random() < 0.3
        yield {
            "id": graph_id(owner, "contact", person.id),
            "displayName": person.name,
            "givenName": person.first_name,
            "surname": person.last_name,
            "emailAddresses": [{"name": person.name, "address": e} for e in emails],
            "businessPhones": [] if mobile else [person.phone],
            "mobilePhone": person.phone if mobile else None,
            "homePhones": [],
            "companyName": person.company or None,
            "jobTitle": None,
        }
