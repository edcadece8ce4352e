"""Address books and CRMs in the store: merges, splits, CRM activities by reference, hubs, tenancy."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from connectors.base import ActivityObservation, Deletion, Observation, Participant, PersonObservation
from models.db import session_factory
from models.network import iter_contacts, read_feed
from models.policy import StrengthPolicy
from models.tables import Connection, IdentityConflict, Member, Org, PersonRecord, SyncState
from sync.ingest import IngestTarget, ingest_page, sweep_unseen
from sync.interactions import OrgView

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def make_org(sessions: sessionmaker, slug: str, domain: str, member: str) -> IngestTarget:
    with sessions.begin() as s:
        org = Org(slug=slug, domains=[domain], policy={}, feed_seq=0)
        s.add(org)
        s.flush()
        m = Member(org_id=org.id, email=member)
        s.add(m)
        s.flush()
        c = Connection(org_id=org.id, member_id=m.id, source="gmail", provider="google", account=member)
        s.add(c)
        s.flush()
        return IngestTarget(
            org_id=org.id,
            org=OrgView(frozenset({domain}), {member: m.id}),
            connection_id=c.id,
            stream="s",
            generation=1,
            policy=StrengthPolicy(),
        )


def mail(ext: str, sender: str, to: str, name: str | None = None) -> ActivityObservation:
    return ActivityObservation(
        "gmail",
        ext,
        "email",
        f"{ext}@mid",
        NOW - timedelta(days=1),
        (Participant("from", sender, name), Participant("to", to)),
    )


def ingest(sessions: sessionmaker, target: IngestTarget, observations: list[Observation]) -> None:
    with sessions.begin() as s:
        ingest_page(s, target, observations, [], NOW)


def network(sessions: sessionmaker, org_id: int) -> list[dict[str, object]]:
    with sessions() as s:
        return list(iter_contacts(s, org_id))


def by_emails(contacts: list[dict[str, object]]) -> dict[tuple[str, ...], dict[str, object]]:
    return {tuple(c["emails"]): c for c in contacts}  # type: ignore[arg-type]


def test_an_address_book_entry_merges_two_contacts_into_the_older_and_deleting_it_splits_them(engine: Engine) -> None:
    sessions = session_factory(engine)
    t = make_org(sessions, "acme", "acme.test", "alice@acme.test")
    ingest(sessions, t, [mail("m1", "dana@globex.test", "alice@acme.test", "D. Reyes")])
    ingest(sessions, t, [mail("m2", "dana.reyes@gmail.com", "alice@acme.test")])
    before = by_emails(network(sessions, t.org_id))
    older, newer = before[("dana@globex.test",)]["id"], before[("dana.reyes@gmail.com",)]["id"]
    entry = PersonObservation(
        "google_contacts", "people/c1", "Dana Reyes", ("dana@globex.test", "dana.reyes@gmail.com"), ("+1 415 555 0100",)
    )
    ingest(sessions, t, [entry])
    (merged,) = network(sessions, t.org_id)
    assert merged["id"] == older and merged["merged_ids"] == [newer]
    assert merged["emails"] == ["dana.reyes@gmail.com", "dana@globex.test"]
    assert merged["phones"] == ["+14155550100"] and merged["name"] == "Dana Reyes"
    assert merged["company_domain"] == "globex.test"
    (rel,) = merged["relationships"]  # type: ignore[misc]
    assert rel["interactions"]["email_in"] == 2
    with sessions() as s:
        changes = read_feed(s, t.org_id, None, 100).items
    assert {"change": "merged", "id": newer, "into": older} in changes
    ingest(sessions, t, [Deletion("google_contacts", "people/c1")])
    after = by_emails(network(sessions, t.org_id))
    assert after[("dana@globex.test",)]["id"] == older
    assert after[("dana.reyes@gmail.com",)]["id"] == newer  # the split gives the old id back
    assert after[("dana@globex.test",)]["name"] == "D. Reyes"


def test_a_crm_call_links_its_owner_member_and_its_contact_by_record_id(engine: Engine) -> None:
    sessions = session_factory(engine)
    t = make_org(sessions, "acme", "acme.test", "alice@acme.test")
    call = ActivityObservation(
        "salesforce",
        "00T1",
        "call",
        "salesforce:00T1",
        NOW - timedelta(days=2),
        (
            Participant("owner", "", person_ref="salesforce:user:005A"),
            Participant("associated", "", person_ref="salesforce:003X"),
        ),
    )
    ingest(
        sessions,
        t,
        [
            PersonObservation("salesforce", "user:005A", "Alice", ("alice@acme.test",), kind="user"),
            PersonObservation("salesforce", "003X", "Pat Lee", (), ("(415) 555-0199",)),
            call,
        ],
    )
    (pat,) = network(sessions, t.org_id)
    assert pat["name"] == "Pat Lee" and pat["emails"] == [] and pat["phones"] == ["+14155550199"]
    (rel,) = pat["relationships"]  # type: ignore[misc]
    assert rel["member"] == "alice@acme.test" and rel["interactions"]["call"] == 1
    # the contact later gains an address that mail already knows: one person
    ingest(sessions, t, [mail("m1", "pat@initech.test", "alice@acme.test")])
    ingest(
        sessions, t, [PersonObservation("salesforce", "003X", "Pat Lee", ("pat@initech.test",), ("(415) 555-0199",))]
    )
    (pat,) = network(sessions, t.org_id)
    assert pat["emails"] == ["pat@initech.test"]
    assert pat["relationships"][0]["interactions"] == {"email_out": 0, "email_in": 1, "meeting": 0, "call": 1}  # type: ignore[index]


def test_a_shared_inbox_on_many_records_ties_nothing_and_is_reported(engine: Engine) -> None:
    sessions = session_factory(engine)
    t = make_org(sessions, "acme", "acme.test", "alice@acme.test")
    records: list[Observation] = [
        PersonObservation("hubspot", str(i), f"Person {i}", ("info@bigco.test", f"p{i}@bigco.test")) for i in range(55)
    ]
    for start in range(0, 55, 20):
        ingest(sessions, t, records[start : start + 20])
    contacts = network(sessions, t.org_id)
    assert len([c for c in contacts if c["emails"] != ["info@bigco.test"]]) == 55
    with sessions() as s:
        assert s.execute(select(IdentityConflict.key)).scalars().all() == ["email:info@bigco.test"]


def test_the_same_address_in_two_orgs_is_two_contacts_and_ties_never_cross(engine: Engine) -> None:
    sessions = session_factory(engine)
    a = make_org(sessions, "acme", "acme.test", "alice@acme.test")
    b = make_org(sessions, "globex", "globex.test", "gus@globex.test")
    ingest(sessions, a, [mail("m1", "dana@initech.test", "alice@acme.test")])
    ingest(sessions, a, [mail("m2", "dana2@initech.test", "alice@acme.test")])
    ingest(
        sessions, b, [PersonObservation("google_contacts", "c1", "Dana", ("dana@initech.test", "dana2@initech.test"))]
    )
    assert len(network(sessions, a.org_id)) == 2
    (only,) = network(sessions, b.org_id)
    assert only["emails"] == ["dana2@initech.test", "dana@initech.test"] and only["relationships"] == []


def test_the_network_does_not_depend_on_the_order_records_arrive(engine: Engine) -> None:
    observations: list[Observation] = [
        mail("m1", "dana@globex.test", "alice@acme.test", "Dana"),
        mail("m2", "dana.r@gmail.com", "alice@acme.test"),
        mail("m3", "kim@hooli.test", "alice@acme.test", "Kim"),
        PersonObservation("google_contacts", "c1", "Dana Reyes", ("dana@globex.test", "dana.r@gmail.com")),
        PersonObservation("salesforce", "003K", "Kim Park", ("kim@hooli.test",), ("+1 650 555 0123",)),
        PersonObservation("salesforce", "003Q", None, (), ("650-555-0123",)),
        PersonObservation("hubspot", "77", "Sam", ("sam@initech.test",)),
    ]
    results = []
    for seed in range(3):
        order = list(observations)
        random.Random(seed).shuffle(order)
        sessions = session_factory(engine)
        t = make_org(sessions, f"org{seed}", "acme.test", "alice@acme.test")
        for obs in order:
            ingest(sessions, t, [obs])
        results.append(
            sorted(
                (
                    tuple(c["emails"]),
                    tuple(c["phones"]),
                    c["name"],
                    c["company_domain"],  # type: ignore[arg-type]
                    tuple((r["member"], tuple(r["interactions"].values())) for r in c["relationships"]),
                )  # type: ignore[union-attr]
                for c in network(sessions, t.org_id)
            )
        )
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 3  # Dana (two addresses), Kim (+ the phone-only record), Sam


def _records(sessions: sessionmaker) -> dict[str, tuple[str, int, str | None]]:
    with sessions() as s:
        rows = s.execute(
            select(PersonRecord.external_id, PersonRecord.stream, PersonRecord.generation, PersonRecord.company)
        )
        return {ext: (stream, generation, company) for ext, stream, generation, company in rows}


def test_a_record_resent_on_its_owner_streams_behalf_keeps_the_owners_stream_and_survives_its_resync(
    engine: Engine,
) -> None:
    sessions = session_factory(engine)
    contacts = replace(make_org(sessions, "acme", "acme.test", "alice@acme.test"), stream="contacts")
    companies = replace(contacts, stream="companies", generation=7)
    with sessions.begin() as s:
        for stream, generation in (("contacts", 2), ("companies", 7)):
            s.add(
                SyncState(
                    org_id=contacts.org_id, connection_id=contacts.connection_id, stream=stream, generation=generation
                )
            )

    def person(ext: str, company: str, owner: str | None = None) -> PersonObservation:
        return PersonObservation("hubspot", ext, f"P {ext}", (f"{ext}@x.test",), company=company, owner_stream=owner)

    ingest(sessions, contacts, [person("1", "Old"), person("2", "Old")])  # generation 1: the first pass
    resync = replace(contacts, generation=2)  # ops force a resync of contacts
    ingest(sessions, resync, [person("1", "Old")])  # the resync reaches record 1
    # a renamed company re-sends both (changed) and a contact the contacts stream has not read yet
    ingest(
        sessions,
        companies,
        [person("1", "New", "contacts"), person("2", "New", "contacts"), person("3", "New", "contacts")],
    )
    assert _records(sessions) == {
        "1": ("contacts", 2, "New"),  # rewritten, still the resync's
        "2": ("contacts", 1, "New"),  # rewritten, still unseen by the resync
        "3": ("contacts", 2, "New"),  # new: the owner's current generation
    }
    ingest(sessions, resync, [person("2", "New")])  # the resync reaches record 2: stamped
    with sessions.begin() as s:
        sweep_unseen(s, resync, NOW)
    assert set(_records(sessions)) == {"1", "2", "3"}, "nothing the source still has was swept"
    ingest(sessions, companies, [person("1", "New", "contacts")])  # unchanged re-send: no stamp from companies
    assert _records(sessions)["1"] == ("contacts", 2, "New")
