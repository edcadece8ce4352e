"""A CRM activity deleted at its source: its interactions go, and its owner (a CRM user, one of the org's
own people) never turns into a contact on the way out (the fault suite's R9 found it did; the whole
network against the oracle after deletions is tests/faults/test_cursor_expiry.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import select

from models.tables import Connection, Identity, Sighting
from sandbox.world import generate_world
from tests.connectors.contract_support import Case, provider_of
from tests.e2e.helpers import CONNECTED, DOMAIN, MEMBERS, ORG, sync_ok
from web.stack import running_stack


def test_deleting_crm_activities_at_the_source_removes_them_and_makes_no_contact_of_their_owners(
    tmp_path: Path, store_url: str
) -> None:
    world = generate_world(seed=0, size=300, org_domain=DOMAIN, members=MEMBERS)
    with running_stack(data_dir=tmp_path / "stack", world=world, database_url=store_url) as stack:
        stack.rt.clock = lambda: world.now
        stack.seed_org(ORG, DOMAIN, MEMBERS, {"sources": ["salesforce", "hubspot"]})
        for provider in ("salesforce", "hubspot"):
            stack.connect(ORG, CONNECTED[0], provider)
        sync_ok(stack)
        with stack.rt.sessions() as s:
            victims = {
                source: (stream, external_id, account)
                for source, stream, external_id, account in s.execute(
                    select(Sighting.source, Sighting.stream, Sighting.external_id, Connection.account)
                    .join(Connection, Connection.id == Sighting.connection_id)
                    .order_by(Sighting.occurred_at)
                )
            }  # the latest activity of each CRM
        assert set(victims) == {"salesforce", "hubspot"}
        for source, (stream, external_id, account) in victims.items():
            case = Case(source, stream)
            provider_of(stack.sandbox, case).delete(
                case, cast(Any, SimpleNamespace(account=account)), cast(Any, SimpleNamespace(external_id=external_id))
            )
        sync_ok(stack)
        with stack.rt.sessions() as s:
            kept = s.execute(select(Sighting.external_id).where(Sighting.external_id.in_(
                [external_id for _, external_id, _ in victims.values()]
            ))).scalars().all()  # fmt: skip
            owners = s.execute(
                select(Identity.value).where(Identity.value.contains(":user:") | Identity.value.contains(":owner:"))
            ).scalars().all()
    assert kept == []
    assert owners == [], f"CRM users made contacts: {owners}"
