"""Retired contacts take their tombstones along: merged into a survivor, or deleted with them (both stores).

A contact merged into one that is itself merged later points at the final survivor; when the survivor's people
lose all evidence, it is deleted and so are the tombstones that pointed at it.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from connectors.base import Deletion, PersonObservation
from models.db import session_factory
from models.tables import Contact
from tests.sync.test_people import by_emails, ingest, mail, make_org, network


def test_tombstones_follow_their_contact_into_a_later_merge_and_out_on_deletion(engine: Engine) -> None:
    sessions = session_factory(engine)
    t = make_org(sessions, "acme", "acme.test", "alice@acme.test")
    for n, sender in enumerate(("a@globex.test", "b@globex.test", "c@globex.test")):
        ingest(sessions, t, [mail(f"m{n}", sender, "alice@acme.test")])
    ids = {e[0]: int(str(c["id"])) for e, c in by_emails(network(sessions, t.org_id)).items()}
    a, b, c = ids["a@globex.test"], ids["b@globex.test"], ids["c@globex.test"]
    assert a < b < c

    def states() -> dict[int, tuple[str, int | None]]:
        with sessions() as s:
            rows = s.execute(select(Contact.id, Contact.status, Contact.merged_into).where(Contact.id.in_([a, b, c])))
            return {i: (status, into) for i, status, into in rows}

    ingest(sessions, t, [PersonObservation("google_contacts", "r1", "Bea", ("b@globex.test", "c@globex.test"))])
    assert states() == {a: ("active", None), b: ("active", None), c: ("merged", b)}
    ingest(sessions, t, [PersonObservation("google_contacts", "r2", "Bea", ("a@globex.test", "b@globex.test"))])
    assert states() == {a: ("active", None), b: ("merged", a), c: ("merged", a)}
    gone = [Deletion("gmail", f"m{n}") for n in range(3)]
    ingest(sessions, t, [*gone, Deletion("google_contacts", "r1"), Deletion("google_contacts", "r2")])
    assert states() == {a: ("deleted", None), b: ("deleted", None), c: ("deleted", None)}
    assert network(sessions, t.org_id) == []
