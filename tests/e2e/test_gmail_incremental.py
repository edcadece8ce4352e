"""After the backfill, Gmail history replays mailbox changes into the store, converging to the oracle."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from models.tables import Activity, SyncState
from sandbox.world import MailMessage, compose_headers
from tests.e2e.helpers import (
    CONNECTED,
    HIDDEN_LABELS,
    assert_matches_oracle,
    copies_by_key,
    delete_everywhere,
    feed_position,
    in_both_connected,
    oracle,
    org_id,
    sole_evidence_key,
    store_contacts,
    sync_ok,
    when_ms,
)
from tests.e2e.oracle import iso
from web.stack import Stack

ALICE, BOB, CAROL = "alice@acme.test", "bob@acme.test", "carol@acme.test"


def _emails(stack: Stack) -> set[str]:
    return {email for contact in store_contacts(stack) for email in contact["emails"]}


def _records_total(stack: Stack) -> int:
    with stack.rt.sessions() as session:
        return int(session.execute(select(func.coalesce(func.sum(SyncState.records_total), 0))).scalar_one())


def test_incremental_sync_applies_new_deleted_and_trashed_mail(backfilled: Stack) -> None:
    """New mail (a new external person too), a message deleted from every mailbox, one copy of a shared
    message deleted, one message trashed and one restored from Trash: the store equals the oracle on the
    mutated mailboxes; a contact whose only evidence was deleted is gone."""
    stack, google, now = backfilled, backfilled.sandbox.google, backfilled.rt.clock()
    before = assert_matches_oracle(stack)
    known = sorted(before.contacts)

    # new mail in several mailboxes
    google.deliver(
        sender="=?UTF-8?B?Wm/DqyBRdWlzdA==?= <Zoe.Quist@NewCo.test>",
        to=[f"Alice <{ALICE}>", BOB],
        subject="Intro",
        internal_date_ms=when_ms(now, 50),
    )
    google.deliver(
        sender=f"Alice <{ALICE}>",
        to=['"Quist, Zoë" <zoe.quist@newco.test>', known[0]],
        cc=[CAROL],
        subject="Follow-up",
        internal_date_ms=when_ms(now, 40),
    )
    google.deliver(sender=known[1], to=[BOB], subject="Question", internal_date_ms=when_ms(now, 30))
    google.deliver(sender="Only Carol <only.carol@elsewhere.test>", to=[CAROL], internal_date_ms=when_ms(now, 20))

    # a message gone from every mailbox: its sole-evidence contact must go too
    gone_contact, gone_key = sole_evidence_key(before, stack)
    assert delete_everywhere(stack, gone_key) >= len(CONNECTED)

    # one copy of another shared message deleted, one message trashed, one restored from Trash
    copies = copies_by_key(stack)
    shared = next(
        key
        for key in sorted(before.activities - before.noise - {gone_key})
        if in_both_connected(copies[key]) and not key.startswith("no-message-id:")
    )
    bob_copy = next(msg for mailbox, msg in copies[shared] if mailbox == BOB)
    assert google.delete_message(BOB, bob_copy.id)
    alice_only = next(
        msg
        for key in sorted(before.activities - before.noise - {gone_key, shared})
        for mailbox, msg in copies[key]
        if [m for m, _ in copies[key]] == [ALICE] and not HIDDEN_LABELS & set(msg.label_ids)
    )
    assert google.trash_message(ALICE, alice_only.id)
    restored = next(
        (mailbox, msg)
        for key in sorted(copies)
        for mailbox, msg in copies[key]
        if mailbox in CONNECTED and "TRASH" in msg.label_ids
    )
    assert google.modify_labels(restored[0], restored[1].id, add=("INBOX",), remove=("TRASH",))

    sync_ok(stack)

    after = assert_matches_oracle(stack)
    emails = _emails(stack)
    assert "zoe.quist@newco.test" in emails
    assert after.contacts["zoe.quist@newco.test"].name == "Zoë Quist"
    assert gone_contact in before.contacts and gone_contact not in emails
    assert "only.carol@elsewhere.test" not in emails  # carol's mailbox is not connected


def test_unchanged_second_sync_writes_nothing(backfilled: Stack) -> None:
    """With no mailbox change, a sync makes exactly one history call per connected mailbox and nothing
    else, the feed's `next` cursor does not move and the contacts are the same."""
    stack = backfilled
    cursor, contacts, records = feed_position(stack), store_contacts(stack), _records_total(stack)
    stack.sandbox.google.reset_stats()

    sync_ok(stack)

    mailboxes = stack.sandbox.google.stats_snapshot()["mailboxes"]
    assert {mailbox: stats["calls"] for mailbox, stats in mailboxes.items()} == {
        mailbox: {"history": 1} for mailbox in CONNECTED
    }
    assert feed_position(stack) == cursor
    assert store_contacts(stack) == contacts
    assert _records_total(stack) == records


def test_bcc_seen_only_in_the_senders_copy_leaves_with_it(backfilled: Stack) -> None:
    """Alice Bccs an external person on mail to Bob: the Bcc is an email_out while Alice's copy exists;
    once her copy is deleted, Bob's copy (without Bcc) is all that is left, and the person is no contact."""
    stack, google, now = backfilled, backfilled.sandbox.google, backfilled.rt.clock()
    ids = google.deliver(
        sender=f"Alice <{ALICE}>",
        to=[f"Bob <{BOB}>"],
        bcc=["Quinn Hidden <quinn@hidden.test>"],
        subject="Between us",
        internal_date_ms=when_ms(now, 10),
    )
    sync_ok(stack)
    expected = assert_matches_oracle(stack)
    tie = expected.contacts["quinn@hidden.test"].ties[ALICE]
    assert (tie.email_out, tie.email_in) == (1, 0)

    assert google.delete_message(ALICE, ids[ALICE])
    sync_ok(stack)

    expected = assert_matches_oracle(stack)
    assert "quinn@hidden.test" not in expected.contacts
    assert "quinn@hidden.test" not in _emails(stack)


def _dateless_copy(internal_date_ms: int) -> MailMessage:
    """A recipient's copy of mail from an external person to Alice and Bob, with no Date header."""
    _, recipient_copy = compose_headers(
        sender="Dara Nodate <dara@nodate.test>",
        to=[f"Alice <{ALICE}>", f"Bob <{BOB}>"],
        subject="No date on this one",
        date=None,
        message_id="<no-date-1@nodate.test>",
    )
    return MailMessage(
        id="",
        thread_id="",
        label_ids=("INBOX", "CATEGORY_PERSONAL"),
        internal_date_ms=internal_date_ms,
        headers=recipient_copy,
        size_estimate=2048,
        snippet="",
    )


def test_activity_time_without_date_header_is_its_earliest_copy_whatever_the_sync_order(backfilled: Stack) -> None:
    """A message without Date takes the internal date; its copies arrive at different times in each
    mailbox, and the activity's time (and so every relationship's first/last time and strength) is the
    earliest copy's, whichever mailbox synced first: the same state a full resync would reach."""
    stack, google, now = backfilled, backfilled.sandbox.google, backfilled.rt.clock()
    early, late = when_ms(now, 120), when_ms(now, 60)
    google.add_message(BOB, _dateless_copy(late))
    sync_ok(stack)
    assert_matches_oracle(stack)

    google.add_message(ALICE, _dateless_copy(early))  # Alice's copy, received an hour earlier, syncs second
    sync_ok(stack)

    with stack.rt.sessions() as session:
        stored = session.execute(
            select(Activity.occurred_at).where(
                Activity.org_id == org_id(stack), Activity.dedupe_key == "no-date-1@nodate.test"
            )
        ).scalar_one()
    assert iso(stored) == iso(datetime.fromtimestamp(early / 1000, UTC))  # the activity has the earliest time
    expected = oracle(stack)
    tie = expected.contacts["dara@nodate.test"].ties[ALICE]
    assert (tie.first_at(), tie.last_at()) == (iso(stored), iso(stored))
    assert_matches_oracle(stack, expected)
