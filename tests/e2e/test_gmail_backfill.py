"""A Gmail backfill through the real OAuth flow, for two reps, equals the independent oracle exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from models.tables import Activity
from sandbox.world import World
from tests.e2e.helpers import (
    CONNECTED,
    ID_LESS,
    assert_matches_oracle,
    assert_rejections_match,
    oracle,
    org_id,
)
from web.stack import Stack


def test_backfill_network_equals_the_oracle(backfilled: Stack, world: World) -> None:
    """Contacts (emails, name, company domain) and each member's email_out/email_in counts, first/last
    times and strength are what DESIGN.md's rules give for the in-window copies of both mailboxes."""
    oldest = world.now - timedelta(days=backfilled.rt.settings.backfill_days)
    too_old = [
        msg
        for owner in CONNECTED
        for msg in world.mailboxes[owner]
        if datetime.fromtimestamp(msg.internal_date_ms / 1000, UTC) < oldest
    ]
    assert too_old, "the world should reach past the backfill window, or the window goes untested"
    expected = assert_matches_oracle(backfilled)
    assert len(expected.contacts) > 50
    assert any(tie.member == "carol@acme.test" for c in expected.contacts.values() for tie in c.ties.values())
    assert backfilled.sandbox.google.stats_snapshot()["token_calls"].get("authorization_code") == len(CONNECTED)


def test_backfill_stores_one_activity_per_message_noise_flagged(backfilled: Stack) -> None:
    """Copies in both mailboxes are one activity (by Message-ID, or by headers when it has none); noise
    (automated senders, list mail, bulk, crowds) is stored as flagged activities."""
    expected = oracle(backfilled)
    assert_matches_oracle(backfilled, expected)
    id_less = {key for key in expected.activities if key.startswith("no-message-id:")}
    assert len(id_less) == ID_LESS
    with backfilled.rt.sessions() as session:
        synthetic = session.execute(
            select(func.count())
            .select_from(Activity)
            .where(Activity.org_id == org_id(backfilled), Activity.dedupe_key.like("synthetic:%"))
        ).scalar_one()
    assert synthetic == ID_LESS
    assert expected.noise, "the world should hold noise"


def test_backfill_keeps_malformed_addresses_as_rejections(backfilled: Stack) -> None:
    """Every malformed address entry of an in-window copy is a rejected record with a reason code,
    while the valid addresses beside it still count (checked by the oracle equality)."""
    expected = assert_matches_oracle(backfilled)
    assert expected.rejected, "the world should hold malformed addresses"
    assert_rejections_match(backfilled, expected)
