"""The public opt-out page: a signed single-use link confirms; forged, expired and replayed links are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from models.network import iter_contacts
from models.tables import Outbox, Suppression
from privacy.optout_link import PURPOSE
from sandbox.world import generate_world
from tokens import signed
from tokens.vault import signing_key
from web.stack import Stack, running_stack

MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")


@pytest.fixture
def stack(tmp_path: Path, store_url: str) -> Iterator[Stack]:
    world = generate_world(seed=9, size=250, org_domain="acme.test", members=MEMBERS)
    with running_stack(data_dir=tmp_path, world=world, database_url=store_url) as running:
        running.seed_org("acme", "acme.test", MEMBERS, {"sources": ["gmail"]})
        running.connect("acme", "alice@acme.test")
        assert running.sync().failed == 0
        yield running


def ask(stack: Stack, identity: str) -> requests.Response:
    return requests.post(f"{stack.rt.settings.public_url}/opt-out", data={"identity": identity}, timeout=60)


def sent_link(stack: Stack) -> str:
    with stack.rt.sessions() as s:
        return s.execute(select(Outbox.body).order_by(Outbox.id.desc())).scalars().first() or ""


def test_a_person_opts_out_through_the_page_and_the_emailed_link_and_a_replay_is_refused(stack: Stack) -> None:
    with stack.rt.sessions() as s:
        email = next(c["emails"][0] for c in iter_contacts(s, 1) if c["emails"] and c["relationships"])
    assert "Opt out" in requests.get(f"{stack.rt.settings.public_url}/opt-out", timeout=30).text
    asked = ask(stack, f"  {email.upper()} ")
    assert asked.status_code == 200 and "confirmation link" in asked.text
    with stack.rt.sessions() as s:
        assert s.execute(select(Suppression)).first() is None  # nothing happens before the person confirms
        recipient = s.execute(select(Outbox.recipient)).scalar_one()
    assert recipient == email
    link = sent_link(stack)
    done = requests.get(link, timeout=60)
    assert done.status_code == 200 and "You are opted out" in done.text
    with stack.rt.sessions() as s:
        assert all(email not in c["emails"] for c in iter_contacts(s, 1))
        assert s.execute(select(Suppression)).first() is not None
    again = requests.get(link, timeout=60)
    assert again.status_code == 400 and "already used" in again.text


def test_forged_and_expired_links_get_a_clear_page_and_change_nothing(stack: Stack) -> None:
    base = stack.rt.settings.public_url
    forged = requests.get(f"{base}/opt-out/confirm", params={"token": "abc.def"}, timeout=30)
    assert forged.status_code == 400 and "not one we sent" in forged.text
    from datetime import UTC, datetime, timedelta

    old = signed.sign(
        {"k": "email:dana@globex.test", "n": "x1"},
        PURPOSE,
        60,
        signing_key(stack.rt.vault),
        now=datetime.now(UTC) - timedelta(days=2),
    )
    expired = requests.get(f"{base}/opt-out/confirm", params={"token": old}, timeout=30)
    assert expired.status_code == 400 and "expired" in expired.text
    wrong_purpose = signed.sign(
        {"k": "email:dana@globex.test", "n": "x2"}, "connect-session", 60, signing_key(stack.rt.vault)
    )
    assert requests.get(f"{base}/opt-out/confirm", params={"token": wrong_purpose}, timeout=30).status_code == 400
    with stack.rt.sessions() as s:
        assert s.execute(select(Suppression)).first() is None


def test_a_malformed_request_gets_a_clear_422_page(stack: Stack) -> None:
    response = ask(stack, "bob@@nowhere")
    assert response.status_code == 422 and "not an email address" in response.text
