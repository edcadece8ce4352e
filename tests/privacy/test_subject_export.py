"""`sxsync export`: everything held about one person across every org, as JSON, audited by hash only."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from models.network import iter_contacts, org_by_slug
from models.suppression import suppress, suppression_hash
from models.tables import AuditEvent, Identity, Org, Participant, PersonRecord
from tests.privacy.helpers import sxsync
from web.stack import Stack


def export(stack: Stack, identity: str) -> dict[str, Any]:
    done = sxsync(stack, "export", identity)
    assert done.returncode == 0, done.stderr[-2000:]
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def shared_person(stack: Stack) -> str:
    """An external address both orgs hold, the one with most activities."""
    with stack.rt.sessions() as s:
        orgs = [o.id for o in s.execute(select(Org)).scalars()]
        per_org = [
            set(s.execute(select(Identity.value).where(Identity.org_id == o, Identity.kind == "email")).scalars())
            for o in orgs
        ]
        shared = set.intersection(*per_org) - {"alice@acme.test", "bob@acme.test", "carol@acme.test"}
        assert shared, "the fixture world should give both orgs common people"
        counts = {
            email: s.execute(
                select(func.count()).select_from(Participant).where(Participant.email == email)
            ).scalar_one()
            for email in shared
        }
    return max(sorted(counts), key=lambda e: counts[e])


def activity_count(stack: Stack, org: str, email: str) -> int:
    with stack.rt.sessions() as s:
        found = org_by_slug(s, org)
        assert found is not None
        return int(
            s.execute(
                select(func.count(func.distinct(Participant.activity_id))).where(
                    Participant.org_id == found.id, Participant.email == email
                )
            ).scalar_one()
        )


def test_export_lists_the_person_in_every_org_as_the_network_api_renders_them(two_orgs: Stack) -> None:
    email = shared_person(two_orgs)
    document = export(two_orgs, email.upper())  # normalized as opt-out normalizes
    assert document["identity"] == {"kind": "email", "value": email}
    assert document["suppressed"] is False
    by_org = {entry["org"]: entry for entry in document["orgs"]}
    assert set(by_org) == {"acme", "globex"}
    for slug, entry in by_org.items():
        with two_orgs.rt.sessions() as s:
            org = org_by_slug(s, slug)
            assert org is not None
            network = [c for c in iter_contacts(s, org.id) if email in c["emails"]]
        assert entry["contacts"] == network and network[0]["relationships"]
        assert len(entry["activities"]) == activity_count(two_orgs, slug, email) > 0
        for activity in entry["activities"]:
            assert set(activity) == {"kind", "at", "sources", "roles", "noise"}  # no body, no subject kept
            assert activity["sources"] and activity["roles"]


def test_export_shows_the_address_book_records_that_list_the_person(two_orgs: Stack) -> None:
    with two_orgs.rt.sessions() as s:
        record = (
            s.execute(select(PersonRecord).where(func.length(PersonRecord.name) > 0).order_by(PersonRecord.id))
            .scalars()
            .first()
        )
        assert record is not None and record.emails, "the sandbox address books should give person records"
        org = s.get_one(Org, record.org_id)
    document = export(two_orgs, record.emails[0])
    entry = next(e for e in document["orgs"] if e["org"] == org.slug)
    assert {
        "source": record.source,
        "kind": record.kind,
        "name": record.name,
        "emails": record.emails,
        "phones": record.phones,
        "company": record.company,
    } in entry["person_records"]
    if record.phones:
        by_phone = export(two_orgs, record.phones[0])
        assert any(record.name == r["name"] for e in by_phone["orgs"] for r in e["person_records"])


def test_export_of_a_rep_shows_membership_and_connected_accounts(two_orgs: Stack) -> None:
    document = export(two_orgs, "bob@acme.test")
    by_org = {entry["org"]: entry for entry in document["orgs"]}
    assert by_org["globex"]["membership"]["member"] is True
    assert {c["source"] for c in by_org["globex"]["membership"]["connections"]} >= {"gmail"}
    assert by_org["acme"]["membership"]["connections"] == []  # a member of acme who never connected there


def test_export_is_audited_by_hash_and_never_names_the_person(two_orgs: Stack) -> None:
    email = shared_person(two_orgs)
    export(two_orgs, email)
    secret = two_orgs.rt.suppression_secret()
    target = f"identity:{suppression_hash('email:' + email, secret)[:16]}"
    with two_orgs.rt.sessions() as s:
        event = (
            s.execute(
                select(AuditEvent)
                .where(AuditEvent.action == "privacy.export", AuditEvent.target == target)
                .order_by(AuditEvent.id.desc())
            )
            .scalars()
            .first()
        )
        rows = [(e.actor, e.target, e.details) for e in s.execute(select(AuditEvent)).scalars()]
    assert event is not None and event.org_id is None and event.actor == "cli"
    assert email not in json.dumps(rows)  # no audit row names the person


def test_export_says_whether_the_identity_is_suppressed(two_orgs: Stack) -> None:
    email = shared_person(two_orgs)
    with two_orgs.rt.writes.begin() as s:
        suppress(s, f"email:{email}", two_orgs.rt.suppression_secret())
    assert export(two_orgs, email)["suppressed"] is True


def test_export_of_an_unknown_address_is_empty_and_a_malformed_one_is_a_usage_error(two_orgs: Stack) -> None:
    assert export(two_orgs, "nobody@nowhere.example") == {
        "identity": {"kind": "email", "value": "nobody@nowhere.example"},
        "suppressed": False,
        "orgs": [],
    }
    done = sxsync(two_orgs, "export", "not an address")
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.strip().count("\n") < 6
