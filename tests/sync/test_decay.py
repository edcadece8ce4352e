"""The daily decay: strengths follow the clock, only changed contacts are republished, idempotent."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from models.network import iter_contacts, read_feed
from models.tables import Org
from sandbox.world import generate_world
from sync.decay import decay_due, decay_org
from web.stack import running_stack

MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")


def test_a_day_later_every_strength_has_decayed_by_the_formula_and_the_feed_says_so(
    tmp_path: Path, store_url: str
) -> None:
    world = generate_world(seed=4, size=200, org_domain="acme.test", members=MEMBERS)
    with running_stack(data_dir=tmp_path, world=world, database_url=store_url) as stack:
        stack.seed_org("acme", "acme.test", MEMBERS, {"sources": ["gmail"]})
        stack.connect("acme", "alice@acme.test")
        assert stack.sync().failed == 0
        rt = stack.rt
        with rt.sessions() as s:
            before = {c["id"]: c for c in iter_contacts(s, 1)}
            cursor = read_feed(s, 1, None, 100_000).next
        later = rt.clock() + timedelta(days=30)
        published = decay_org(rt, 1, later)
        with rt.sessions() as s:
            after = {c["id"]: c for c in iter_contacts(s, 1)}
            changed = read_feed(s, 1, cursor, 100_000).items
            assert s.execute(select(Org.decayed_at)).scalar_one() == later
        tied = [cid for cid, c in before.items() if c["relationships"]]
        assert published == len(tied) == len(changed) > 0
        for cid in tied:
            for old, new in zip(before[cid]["relationships"], after[cid]["relationships"], strict=True):
                s_old, s_new = -10 * math.log(1 - old["strength"]), -10 * math.log(1 - new["strength"])
                assert math.isclose(s_new, s_old * 0.5 ** (30 / 90), rel_tol=1e-3, abs_tol=1e-5)
        assert decay_due(rt, later + timedelta(hours=1)) == 0  # not due again within the day
        assert decay_org(rt, 1, later) == 0  # recomputing at the same instant changes nothing
