"""An expired Gmail history falls back to a full pass that converges to the oracle's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e.helpers import (
    CONNECTED,
    DOMAIN,
    HIDDEN_LABELS,
    MEMBERS,
    activity_counts,
    assert_matches_oracle,
    copies_by_key,
    delete_everywhere,
    in_both_connected,
    live_copies,
    network_differences,
    oracle,
    sole_evidence_key,
    store_contacts,
    sync_ok,
    when_ms,
)
from tests.e2e.oracle import expected_network, message_key
from web.stack import Stack

ALICE, BOB = CONNECTED


def test_expired_history_resyncs_fully_and_drops_lost_deletions(backfilled: Stack) -> None:
    """Deletions (a whole message, one copy of a shared one, a trashed one) and an addition happen, then
    the history expires, so the deletions are lost: the next sync gets 404, runs a full pass, sweeps the
    copies it no longer sees and equals the oracle (the deleted message's sole contact is gone); the sync
    after it is incremental again."""
    stack, google, now = backfilled, backfilled.sandbox.google, backfilled.rt.clock()
    before = assert_matches_oracle(stack)
    gone_contact, gone_key = sole_evidence_key(before, stack)
    delete_everywhere(stack, gone_key)
    copies = copies_by_key(stack)
    shared = next(
        key
        for key in sorted(before.activities - before.noise - {gone_key})
        if in_both_connected(copies[key]) and key in {k for keys in before.evidence.values() for k in keys}
    )
    assert google.delete_message(BOB, next(msg.id for mailbox, msg in copies[shared] if mailbox == BOB))
    trashed = next(
        msg
        for key in sorted(before.activities - before.noise - {gone_key, shared})
        for mailbox, msg in copies[key]
        if mailbox == ALICE and not HIDDEN_LABELS & set(msg.label_ids)
    )
    assert google.trash_message(ALICE, trashed.id)
    google.deliver(sender="New Person <new.person@later.test>", to=[ALICE], internal_date_ms=when_ms(now, 5))
    google.expire_history()
    google.reset_stats()

    sync_ok(stack)

    stats = google.stats_snapshot()
    for mailbox in CONNECTED:
        calls = stats["mailboxes"][mailbox]["calls"]
        assert calls.get("history") == 1 and calls.get("list", 0) >= 1, (mailbox, calls)
    assert stats["statuses"].get("404") == len(CONNECTED)
    after = assert_matches_oracle(stack)
    assert gone_contact not in after.contacts
    assert gone_contact not in {e for c in store_contacts(stack) for e in c["emails"]}
    assert "new.person@later.test" in after.contacts

    google.reset_stats()
    sync_ok(stack)
    calls = {mailbox: s["calls"] for mailbox, s in google.stats_snapshot()["mailboxes"].items()}
    assert calls == {mailbox: {"history": 1} for mailbox in CONNECTED}
    assert_matches_oracle(stack)


def test_old_mail_restored_from_trash_stays_outside_the_window_incrementally_as_on_resync(
    backfilled: Stack,
) -> None:
    """A message older than the backfill window is trashed and restored: the full pass never syncs it, so
    the incremental sync must not either, or an incremental sync and a full resync reach different stores
    (DESIGN rule 5: a resync converges to the same store state)."""
    stack, google, now = backfilled, backfilled.sandbox.google, backfilled.rt.clock()
    expected = assert_matches_oracle(stack)
    oldest = now - timedelta(days=stack.rt.settings.backfill_days)
    mailbox = live_copies(stack, (ALICE,))[ALICE]
    unbounded = expected_network(  # the same rules without a window: which old mail names new people
        {ALICE: mailbox}, members=MEMBERS, org_domains=(DOMAIN,), now=now, backfill_days=100_000
    )
    old = next(
        msg
        for msg in sorted(mailbox, key=lambda m: m.internal_date_ms)
        if datetime.fromtimestamp(msg.internal_date_ms / 1000, UTC) < oldest
        and not HIDDEN_LABELS & set(msg.label_ids)
        and any(
            message_key(msg) in keys and email not in expected.contacts for email, keys in unbounded.evidence.items()
        )
    )
    assert google.trash_message(ALICE, old.id)
    assert google.modify_labels(ALICE, old.id, add=("INBOX",), remove=("TRASH",))

    sync_ok(stack)  # incremental: history says the message came back
    incremental, incremental_counts, incremental_expected = store_contacts(stack), activity_counts(stack), oracle(stack)

    google.deliver(sender=f"Bob <{BOB}>", to=[ALICE], subject="ping", internal_date_ms=when_ms(now, 5))
    google.expire_history()  # the cursor is now behind the history's floor: 404, full resync
    google.reset_stats()
    sync_ok(stack)
    assert google.stats_snapshot()["statuses"].get("404") == len(CONNECTED)
    assert_matches_oracle(stack)  # the full resync converges to the rules' state

    problems = network_differences(incremental, incremental_expected)
    assert not problems, "the incremental sync stored out-of-window mail a full resync drops:\n  " + "\n  ".join(
        problems
    )
    assert incremental_counts == (len(incremental_expected.activities), len(incremental_expected.noise))
