"""Two orgs that know the same people: whatever route, parameters and ids acme's key tries, no answer
carries an id or an address that only globex holds, and globex's names answer 404 (property test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from models.tables import Connection, Contact, Identity, Member, Org
from tests.privacy.helpers import KEYS, api
from web.stack import Stack


@dataclass(frozen=True)
class OrgFacts:
    """What one org holds: its contact ids (live and merged), addresses, connections and members."""

    contact_ids: frozenset[str]
    emails: frozenset[str]
    connection_ids: frozenset[int]
    domains: frozenset[str]


def facts(stack: Stack, slug: str) -> OrgFacts:
    with stack.rt.sessions() as s:
        org_id = s.execute(select(Org.id).where(Org.slug == slug)).scalar_one()
        contacts = frozenset(str(i) for i in s.execute(select(Contact.id).where(Contact.org_id == org_id)).scalars())
        emails = set(
            s.execute(select(Identity.value).where(Identity.org_id == org_id, Identity.kind == "email")).scalars()
        )
        emails |= set(s.execute(select(Member.email).where(Member.org_id == org_id)).scalars())
        connections = frozenset(s.execute(select(Connection.id).where(Connection.org_id == org_id)).scalars())
    return OrgFacts(contacts, frozenset(emails), connections, frozenset(e.rpartition("@")[2] for e in emails))


@dataclass(frozen=True)
class World:
    stack: Stack
    acme: OrgFacts
    globex: OrgFacts


@pytest.fixture(scope="module")
def world(two_orgs: Stack) -> Iterator[World]:
    acme, globex = facts(two_orgs, "acme"), facts(two_orgs, "globex")
    assert acme.emails & globex.emails - {"bob@acme.test"}, "the orgs know some of the same people"
    assert globex.emails - acme.emails and globex.contact_ids, "globex holds something acme must never see"
    yield World(two_orgs, acme, globex)


def strings(value: Any) -> Iterator[tuple[str | None, str]]:
    """Every (key, string) in a JSON document; numbers as strings too."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (str, int)) and not isinstance(item, bool):
                yield key, str(item)
            else:
                for _, found in strings(item):
                    yield key, found
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield None, value


ID_KEYS = frozenset({"id", "into", "merged_ids", "contact"})


def requests_for(w: World) -> st.SearchStrategy[tuple[str, str, dict[str, Any]]]:
    """Routes of the org-keyed API with parameters drawn from both orgs' data (and nonsense)."""
    slugs = st.sampled_from(["acme", "globex", "nosuch"])
    ids = st.sampled_from([*sorted(w.acme.contact_ids | w.globex.contact_ids), "0", "999999999"])
    emails = st.sampled_from(sorted(w.acme.emails | w.globex.emails))
    domains = st.sampled_from(sorted(w.acme.domains | w.globex.domains))
    foreign = st.sampled_from(sorted(w.globex.connection_ids))
    return st.one_of(
        st.builds(lambda o, a, n: ("GET", "/api/network/contacts", {"org": o, "after": a, "limit": n}),
                  slugs, st.one_of(st.none(), st.integers(0, 10_000).map(str)), st.integers(1, 50)),
        st.builds(lambda o, i, x: ("GET", f"/api/network/contacts/{i}", {"org": o, "explain": x}),
                  slugs, ids, st.booleans()),
        st.builds(lambda o, e: ("GET", "/api/network/intro-paths", {"org": o, "email": e}), slugs, emails),
        st.builds(lambda o, d: ("GET", "/api/network/intro-paths", {"org": o, "domain": d}), slugs, domains),
        st.builds(lambda o: ("GET", "/api/audit", {"org": o}), slugs),
        st.builds(lambda o: ("GET", "/api/connections", {"org": o}), slugs),
        st.builds(lambda c: ("DELETE", f"/api/connections/{c}", {}), foreign),
        st.builds(lambda o: ("PUT", f"/api/orgs/{o}", {}), st.sampled_from(["globex", "nosuch"])),
    )  # fmt: skip


def test_no_route_lets_one_org_see_or_touch_the_others_data(world: World) -> None:
    w = world
    only_globex_ids = w.globex.contact_ids - w.acme.contact_ids
    only_globex_emails = w.globex.emails - w.acme.emails

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(requests_for(w))
    def check(request: tuple[str, str, dict[str, Any]]) -> None:
        method, path, params = request
        body = {"domains": ["evil.example"]} if method == "PUT" else None
        answer = api(w.stack, method, path, KEYS["acme"], params=params, json=body)
        if params.get("org") not in (None, "acme") or method in ("DELETE", "PUT"):
            assert answer.status_code == 404, (request, answer.status_code, answer.text[:200])
            return
        assert answer.status_code in (200, 400, 404, 422), (request, answer.status_code)
        document = json.loads(answer.text)
        echoed = {str(v).lower() for v in params.values()}  # the caller's own input, answered back
        for key, text in strings(document):
            if text.lower() in echoed:
                continue
            assert not (key in ID_KEYS and text in only_globex_ids), (request, key, text)
            assert text.lower() not in only_globex_emails, (request, text)

    check()
    assert facts(w.stack, "globex") == w.globex, "nothing of globex was changed or deleted"
