"""Tokens during a sync: an expiry costs exactly one refresh, and no token is ever written in clear."""

from __future__ import annotations

import logging
import re
from collections import deque
from pathlib import Path

from sqlalchemy import select

from models.tables import Connection
from sync.logs import configure_logging
from sync.pipeline import run_page
from sync.scheduler import start_all
from tests.pipeline.conftest import DOMAIN, GMAIL_ONLY, MEMBERS, ORG, small_world
from web.stack import running_stack

Job = tuple[int, str, int]


def test_token_revoked_at_the_provider_mid_sync_costs_one_refresh_and_the_sync_completes(
    tmp_path: Path, store_url: str
) -> None:
    with running_stack(
        data_dir=tmp_path, world=small_world(size=600), database_url=store_url, workers=0, page_size=100,
        read_ahead_pages=1,  # one page a job: the test revokes the token between two page jobs
    ) as stack:  # fmt: skip
        stack.seed_org(ORG, DOMAIN, MEMBERS, GMAIL_ONLY)
        jobs: deque[Job] = deque()
        stack.rt.enqueue = lambda c, s, v, _delay: jobs.append((c, s, v))
        stack.connect(ORG, "alice@acme.test")
        start_all(stack.rt)
        assert run_page(stack.rt, *jobs.popleft()).status == "committed"
        assert stack.sandbox.google.token_calls["refresh_token"] == 0
        # the provider invalidates the access token while we still think it valid: a plain 401 follows
        stack.sandbox.google.expire_access_tokens()
        statuses = []
        while jobs:
            statuses.append(run_page(stack.rt, *jobs.popleft()).status)
        assert statuses[-1] == "done" and "reauth" not in statuses
        assert stack.sandbox.google.token_calls["refresh_token"] == 1
        with stack.rt.sessions() as s:
            assert s.execute(select(Connection.status)).scalar_one() == "active"


TOKEN_SHAPED = re.compile(rb"(?:ya29\.|1//)[A-Za-z0-9_-]{40,}")  # Google's access and refresh token shapes


def test_no_token_in_the_database_file_or_the_debug_logs(tmp_path: Path, sqlite_url: str) -> None:
    log_dir = tmp_path / "logs"
    configure_logging("DEBUG", log_dir, stderr=False)
    try:
        with running_stack(data_dir=tmp_path, world=small_world(size=300), database_url=sqlite_url) as stack:
            stack.seed_org(ORG, DOMAIN, MEMBERS)
            for email in MEMBERS[:2]:
                stack.connect(ORG, email)
            stack.sandbox.google.expire_access_tokens()  # force refreshes too
            assert stack.sync().failed == 0
            google = stack.sandbox.google
            secrets = list(google.access_tokens) + list(google.refresh_tokens) + list(google.codes)
    finally:
        for handler in logging.getLogger().handlers:
            handler.flush()
        configure_logging("WARNING", None)
    assert len(secrets) >= 6
    store = b"".join(p.read_bytes() for p in Path(sqlite_url.removeprefix("sqlite:///")).parent.glob("store.db*"))
    logs = (log_dir / "sxsync.log").read_bytes()
    shaped = TOKEN_SHAPED.search(store)  # a bare 3-byte "1//" can occur by chance in binary pages
    assert shaped is None, f"a Google-token-shaped string is stored: {store[shaped.start() - 40 : shaped.end()]!r}"
    assert len(logs) > 1000  # the debug log did record the sync
    for secret in secrets:
        assert secret.encode() not in store, "a token is stored in clear"
        assert secret.encode() not in logs, "a token reached the logs"
