"""The change feed over real HTTP: replaying it gives exactly the contacts `sxsync contacts --json` lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.helpers import (
    API_KEY,
    CONNECTED,
    ORG,
    OTHER_ORG_KEY,
    assert_matches_oracle,
    delete_everywhere,
    sole_evidence_key,
    store_contacts,
    sync_ok,
    when_ms,
)
from web.stack import Stack

PAGE = 7


@pytest.fixture
def api() -> Iterator[requests.Session]:
    """An HTTP client that ignores proxy settings (the app is on loopback)."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


@pytest.fixture
def churned(backfilled: Stack) -> Stack:
    """After the backfill, a message deleted everywhere (a contact deleted) and new mail, synced again."""
    expected = assert_matches_oracle(backfilled)
    _, key = sole_evidence_key(expected, backfilled)
    delete_everywhere(backfilled, key)
    backfilled.sandbox.google.deliver(
        sender="Feed Newcomer <newcomer@feed.test>",
        to=[CONNECTED[0]],
        internal_date_ms=when_ms(backfilled.rt.clock(), 15),
    )
    sync_ok(backfilled)
    return backfilled


def get_feed(stack: Stack, api: requests.Session, key: str | None = API_KEY, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return api.get(
        f"{stack.rt.settings.public_url}/api/network/contacts",
        params={"org": ORG, **params},
        headers=headers,
        timeout=30,
    )


def replay(
    stack: Stack, api: requests.Session, state: dict[str, dict[str, Any]], after: str | None
) -> tuple[str | None, list[dict[str, Any]]]:
    """Apply the feed after `after` to `state` (by contact id) page by page; return the last cursor and items."""
    items: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": PAGE}
        if after is not None:
            params["after"] = after
        response = get_feed(stack, api, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= PAGE
        for item in page["items"]:
            if item["change"] == "upserted":
                state[item["contact"]["id"]] = item["contact"]
            else:
                assert item["change"] in ("deleted", "merged")
                state.pop(item["id"], None)
        items.extend(page["items"])
        after = page["next"]
        if not page["has_more"]:
            return after, items


def cli_contacts(stack: Stack, store_url: str, tmp_path: Path) -> list[dict[str, Any]]:
    """`sxsync contacts --org acme --json` in another process, on the same store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SXSYNC_")}
    env |= {
        "SXSYNC_DATABASE_URL": store_url,
        "SXSYNC_SECRET_KEYS": stack.rt.settings.secret_keys,
        "SXSYNC_DATA_DIR": str(tmp_path / "cli"),
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sxsync"), "contacts", "--org", ORG, "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_feed_replay_equals_iter_contacts_and_the_cli(
    churned: Stack, api: requests.Session, store_url: str, tmp_path: Path
) -> None:
    """Replaying GET /api/network/contacts from the beginning, 7 at a time, yields exactly the contacts
    `iter_contacts` and `sxsync contacts --json` give (deleted contacts appear as deletions); resuming
    from the saved `next` after more changes still converges."""
    state: dict[str, dict[str, Any]] = {}
    cursor, items = replay(churned, api, state, None)
    assert any(item["change"] == "deleted" for item in items), "the churn should have deleted a contact"
    assert len(items) > PAGE
    contacts = store_contacts(churned)
    assert state == {c["id"]: c for c in contacts}
    assert cli_contacts(churned, store_url, tmp_path) == contacts

    churned.sandbox.google.deliver(
        sender="Late Arrival <late@feed.test>", to=[CONNECTED[1]], internal_date_ms=when_ms(churned.rt.clock(), 1)
    )
    sync_ok(churned)
    _, more = replay(churned, api, state, cursor)
    assert more and any(
        item["change"] == "upserted" and item["contact"]["emails"] == ["late@feed.test"] for item in more
    )
    contacts = store_contacts(churned)
    assert state == {c["id"]: c for c in contacts}
    assert_matches_oracle(churned)


def test_feed_answers_only_its_orgs_key(churned: Stack, api: requests.Session) -> None:
    """Another org's key gets 404 (no existence oracle), no key 401, a cursor we never issued 400."""
    assert get_feed(churned, api).status_code == 200
    assert get_feed(churned, api, key=OTHER_ORG_KEY).status_code == 404
    missing = get_feed(churned, api, key=None)
    assert missing.status_code == 401
    assert missing.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert get_feed(churned, api, key="not-a-key").status_code == 401
    for bad in ("abc", "-1", "1" * 40):
        assert get_feed(churned, api, after=bad).status_code == 400, bad
