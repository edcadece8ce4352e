"""`among` finds exactly the rows whose value is listed, whatever the values hold (SQLite and PostgreSQL).

On PostgreSQL a list of plain strings or ints goes as one array literal made by `str.join`, so values that
the literal's syntax gives a meaning to (commas, braces, quotes, backslashes, blanks, NULL, "") must still
match only themselves.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from models.db import session_factory
from models.store import among, insert_with_ids
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
