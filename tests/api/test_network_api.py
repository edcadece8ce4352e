"""The network API a consumer uses: explainable relationships and intro paths, org-scoped, over HTTP."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from models.network import iter_contacts
from sandbox.world import generate_world
from web.stack import Stack, running_stack

MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    world = generate_world(seed=3, size=500, org_domain="acme.test", members=MEMBERS)
    path: Path = tmp_path_factory.mktemp("api")
    with running_stack(data_dir=path, world=world, api_keys="acme=key-a,globex=key-g") as running:
        running.seed_org("acme", "acme.test", MEMBERS, {"sources": ["gmail"]})
        running.seed_org("globex", "globex.example", ("gus@globex.example",))
        for email in MEMBERS[:2]:
            running.connect("acme", email)
        assert running.sync().failed == 0
        yield running


def get(stack: Stack, path: str, key: str = "key-a", **params: str) -> requests.Response:
    return requests.get(
        f"{stack.rt.settings.public_url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def busiest(stack: Stack) -> dict[str, object]:
    with stack.rt.sessions() as s:
        contacts = list(iter_contacts(s, 1))
    return max(contacts, key=lambda c: sum(sum(r["interactions"].values()) for r in c["relationships"]))  # type: ignore[union-attr]


def test_explain_gives_weights_score_and_the_ten_most_recent_interactions(stack: Stack) -> None:
    contact = busiest(stack)
    response = get(stack, f"/api/network/contacts/{contact['id']}", org="acme", explain="1")
    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k != "relationships"} == {
        k: v for k, v in contact.items() if k != "relationships"
    }
    for tie, plain in zip(body["relationships"], contact["relationships"], strict=True):  # type: ignore[call-overload]
        assert tie["interactions"] == plain["interactions"] and tie["strength"] == plain["strength"]
        assert tie["weights"] == {"email_out": 1.0, "email_in": 0.7, "meeting": 3.0, "call": 2.0}
        assert math.isclose(tie["strength"], 1 - math.exp(-tie["score"] / 10), abs_tol=1e-5)
        recent = tie["recent"]
        assert 0 < len(recent) <= 10 and len(recent) == min(10, sum(tie["interactions"].values()))
        assert [r["at"] for r in recent] == sorted((r["at"] for r in recent), reverse=True)
        assert all(r["sources"] == ["gmail"] and "subject" not in r for r in recent)


def test_intro_paths_rank_members_by_their_strongest_tie(stack: Stack) -> None:
    contact = busiest(stack)
    email = contact["emails"][0]  # type: ignore[index]
    by_email = get(stack, "/api/network/intro-paths", org="acme", email=email.upper()).json()
    expected = sorted(((t["member"], t["strength"]) for t in contact["relationships"]), key=lambda m: (-m[1], m[0]))  # type: ignore[union-attr]
    assert [(p["member"], p["strength"]) for p in by_email["paths"]] == expected
    assert all(p["via"]["id"] == contact["id"] for p in by_email["paths"])
    domain = contact["company_domain"] or email.split("@")[1]
    by_domain = get(stack, "/api/network/intro-paths", org="acme", domain=domain).json()
    strengths = [p["strength"] for p in by_domain["paths"]]
    assert strengths == sorted(strengths, reverse=True) and len(strengths) >= 1


def test_the_network_api_is_org_scoped_and_validates_its_input(stack: Stack) -> None:
    contact = busiest(stack)
    assert get(stack, f"/api/network/contacts/{contact['id']}", key="key-g", org="acme").status_code == 404
    assert get(stack, f"/api/network/contacts/{contact['id']}", key="key-g", org="globex").status_code == 404
    assert get(stack, "/api/network/intro-paths", org="acme", email="not-an-address").status_code == 422
    assert get(stack, "/api/network/intro-paths", org="acme").status_code == 422
    assert get(stack, "/api/network/intro-paths", key="nope", org="acme", domain="x.test").status_code == 401
