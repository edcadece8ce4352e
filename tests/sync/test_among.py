"""`among` finds exactly the rows whose value is listed, and bulk writes store values as they are (both stores).

On PostgreSQL lists of strings or ints go as binary arrays packed by models.arrays, so values that an array's
syntax gives a meaning to (commas, braces, quotes, backslashes, blanks, NULL, "") and multi-byte characters
must still match and store only themselves.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from models.db import session_factory
from models.store import among, bulk_update, insert_with_ids
from models.tables import Contact
from tests.sync.test_ingest import setup_org

AWKWARD = [
    "plain",
    "with,comma",
    "{braces}",
    'a "quote"',
    "back\\slash",
    " padded ",
    "NULL",
    "null",
    "",
    "tab\tand\nnewline",
    "ünïcødé ✓",
]


def test_listed_values_match_only_themselves(engine: Engine) -> None:
    org_id, _, _ = setup_org(engine)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        ids = insert_with_ids(s, Contact, [{"org_id": org_id, "name": name} for name in [*AWKWARD, "other"]])
        by_name = dict(zip([*AWKWARD, "other"], ids, strict=True))
        for names in ([n for n in AWKWARD if '"' not in n and "\\" not in n], AWKWARD, ["NULL", ""], ["none"], []):
            found = s.execute(select(Contact.name).where(among(s, Contact.name, names))).scalars()
            assert sorted(found) == sorted(n for n in names if n in by_name)
        for wanted in (ids[:3], [ids[-1]], [10**12, ids[0]], []):
            found = s.execute(select(Contact.id).where(among(s, Contact.id, wanted))).scalars()
            assert sorted(found) == sorted(i for i in wanted if i in ids)
        plain = s.execute(select(Contact.id).where(among(s, Contact.name, iter(["plain"])))).scalar_one()
        assert plain == by_name["plain"]


def test_bulk_writes_store_awkward_strings_and_large_ints_as_they_are(engine: Engine) -> None:
    org_id, _, _ = setup_org(engine)
    sessions = session_factory(engine)
    big = 2**62 + 7
    with sessions.begin() as s:
        ids = insert_with_ids(s, Contact, [{"org_id": org_id, "name": name, "feed_seq": big} for name in AWKWARD])
        stored = s.execute(select(Contact.id, Contact.name, Contact.feed_seq).where(among(s, Contact.id, ids))).all()
        assert sorted(stored) == sorted(zip(ids, AWKWARD, [big] * len(ids), strict=True))
        bulk_update(s, Contact, [{"id": i, "company": name} for i, name in zip(ids, reversed(AWKWARD), strict=True)])
        companies = dict(s.execute(select(Contact.id, Contact.company).where(among(s, Contact.id, ids))).all())
    assert companies == dict(zip(ids, reversed(AWKWARD), strict=True))
