"""The world generator: deterministic by seed, and every messy feature the sync must survive is present."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import timedelta
from email.utils import getaddresses

import pytest

from sandbox import World, generate_world
from sandbox.world import DEFAULT_NOW


@pytest.fixture(scope="module")
def w2000() -> World:
    return generate_world(3, size=2000)


def test_same_seed_same_world() -> None:
    assert generate_world(11, size=400) == generate_world(11, size=400)
    assert generate_world(11, size=400) != generate_world(12, size=400)


def test_size_people_and_members(w2000: World) -> None:
    assert w2000.members == ("alice@acme.test", "bob@acme.test", "carol@acme.test")
    mids = {m.message_id for _, m in w2000.all_messages()}
    assert len(mids) == 2000  # size = distinct emails
    externals = [p for p in w2000.people if not p.colleague]
    colleagues = [p for p in w2000.people if p.colleague]
    assert externals and colleagues
    assert all(p.email.endswith("@acme.test") for p in colleagues)
    assert not set(w2000.members) & {e for p in w2000.people for e in p.emails}
    assert any(p.company_domain in ("gmail.com", "yahoo.com", "outlook.com") for p in externals)
    assert any(len(p.emails) == 2 for p in externals)
    assert len({re.sub(r"\d", "9", p.phone) for p in w2000.people}) >= 6  # several phone formats
    assert any(not p.company_domain.isascii() for p in externals)  # IDN company domains


def test_gmail_ids_threads_and_copies(w2000: World) -> None:
    by_mid: dict[str | None, list[tuple[str, str]]] = defaultdict(list)
    for owner, msgs in w2000.mailboxes.items():
        ids = [m.id for m in msgs]
        assert len(ids) == len(set(ids))
        assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
        threads = Counter(m.thread_id for m in msgs)
        assert max(threads.values()) >= 3
        assert {m.thread_id for m in msgs} <= set(ids)  # thread id = first message's id in that mailbox
        for m in msgs:
            by_mid[m.message_id].append((owner, m.id))
    shared = [copies for copies in by_mid.values() if len(copies) > 1]
    assert shared
    assert all(len({gid for _, gid in c}) == len(c) for c in shared)  # different Gmail ids per copy
    # the sender's copy keeps Bcc, recipient copies do not
    bcc_senders = [m for _, m in w2000.all_messages() if m.header("Bcc")]
    assert bcc_senders and all("SENT" in m.label_ids for m in bcc_senders)
    for m in bcc_senders:
        for owner, gid in by_mid[m.message_id]:
            copy = next(x for x in w2000.mailboxes[owner] if x.id == gid)
            assert copy is m or copy.header("Bcc") is None


def test_messy_headers_present(w2000: World) -> None:
    msgs = [m for _, m in w2000.all_messages()]
    addr_text = "\n".join(v for m in msgs for k, v in m.headers if k in ("From", "To", "Cc", "Bcc", "Reply-To"))
    subjects = [m.header("Subject") or "" for m in msgs]
    assert any(s.startswith(("Re: ", "RE: ")) for s in subjects)
    assert any(m.header("In-Reply-To") and m.header("References") for m in msgs)
    assert re.search(r'"[^"]+, [^"]+" <', addr_text)  # quoted display name with a comma
    assert "=?UTF-8?B?" in addr_text and "=?iso-8859-1?Q?" in addr_text
    assert re.search(r"[A-Z0-9._]+@[A-Z0-9.-]+\.TEST", addr_text)  # upper-case address
    assert "xn--" in addr_text and re.search(r"@[^\s>,]*[^\x00-\x7f]", addr_text)  # IDN both ways
    for auto in ("noreply@", "notifications@", "MAILER-DAEMON@"):
        assert auto.lower() in addr_text.lower()
    assert any(m.header("List-Id") for m in msgs)
    assert any(m.header("List-Unsubscribe") for m in msgs)
    assert any(m.header("Precedence") == "bulk" for m in msgs)
    assert any(m.header("Reply-To") for m in msgs)
    assert max(len(getaddresses([m.header("To") or "", m.header("Cc") or ""])) for m in msgs) > 25
    for bad in ("bob@@x", "undisclosed-recipients:;"):
        assert bad in addr_text
    entries = [e.strip() for line in addr_text.splitlines() for e in line.split(", ")]
    assert any("@" not in e and ":" not in e for e in entries)  # a bare name
    assert any(e.count("<") != e.count(">") for e in entries)  # unbalanced angle brackets
    assert any(m.header("Date") is None for m in msgs)
    unparseable = [
        m.header("Date")
        for m in msgs
        if m.header("Date") is not None
        and not re.match(r"^(\w{3}, )?\d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", m.header("Date") or "")
    ]
    assert unparseable
    mids = [m.message_id or "" for m in msgs]
    assert any(".prod.outlook.com>" in x for x in mids) and any("@mail.gmail.com>" in x for x in mids)


def test_time_spread(w2000: World) -> None:
    now_ms = int(DEFAULT_NOW.timestamp() * 1000)
    dates = [m.internal_date_ms for _, m in w2000.all_messages()]
    assert max(dates) < now_ms
    assert min(dates) >= now_ms - int(timedelta(days=421).total_seconds() * 1000)
    year_ago = now_ms - int(timedelta(days=365).total_seconds() * 1000)
    old = sum(1 for d in dates if d < year_ago)
    assert 0.05 * len(dates) < old < 0.25 * len(dates)


def test_labels(w2000: World) -> None:
    labels = Counter(lab for _, m in w2000.all_messages() for lab in m.label_ids)
    for lab in ("INBOX", "SENT", "IMPORTANT", "UNREAD", "SPAM", "CATEGORY_PERSONAL", "CATEGORY_UPDATES"):
        assert labels[lab] > 0, lab
