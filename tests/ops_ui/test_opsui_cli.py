"""`sxsync dead-letters` and `sxsync connection` as separate processes, on the real store and Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis
from sqlalchemy import select

from models.tables import AuditEvent, Connection
from tests.ops_ui.conftest import DOMAIN, MEMBERS, ORG, OTHER_ORG, connection_id, settings_env, small_world
from web.stack import running_stack

SXSYNC = str(Path(sys.executable).with_name("sxsync"))


def test_cli_lists_and_requeues_dead_letters_and_steers_connections(
    tmp_path: Path, sqlite_url: str, redis_url: str
) -> None:
    with running_stack(
        data_dir=tmp_path / "stack",
        world=small_world(size=60),
        database_url=sqlite_url,
        broker_url=redis_url,
        workers=0,
    ) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        stack.seed_org(OTHER_ORG, "globex.test", ("gina@globex.test",))
        stack.connect(ORG, MEMBERS[0])
        gmail = connection_id(stack, MEMBERS[0], "gmail")
        stack.broker.get_actor("sync_page").send(gmail, "messages", 0)
        consumer = stack.broker.consume("sync", prefetch=1, timeout=200)
        message = None
        while message is None:
            message = next(consumer)
        consumer.nack(message)
        consumer.close()
        env = settings_env(stack.rt.settings) | {"NO_COLOR": "1", "COLUMNS": "200"}
        cwd = tmp_path / "cwd"
        cwd.mkdir()

        def sxsync(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([SXSYNC, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)

        listed = sxsync("dead-letters", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        [letter] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert (letter["connection_id"], letter["stream"], letter["cursor_version"]) == (gmail, "messages", 0)
        assert "Traceback" not in listed.stderr

        refused = sxsync("dead-letters", "requeue", "--connection", str(gmail), "--org", OTHER_ORG)
        assert refused.returncode == 1 and f"no connection {gmail} in org 'globex'" in refused.stderr
        requeued = sxsync("dead-letters", "requeue", "--connection", str(gmail), "--org", ORG)
        assert requeued.returncode == 0, requeued.stderr
        assert f"connection {gmail}: 1 dead letter(s) requeued (messages)" in requeued.stdout
        client = redis.Redis.from_url(redis_url)
        assert (client.zcard("dramatiq:sync.XQ"), client.llen("dramatiq:sync")) == (0, 1)

        unknown = sxsync("connection", "pause", "999999")
        assert unknown.returncode == 1 and "no connection 999999" in unknown.stderr
        paused = sxsync("connection", "pause", str(gmail), "--org", ORG)
        assert paused.returncode == 0 and f"connection {gmail}: paused" in paused.stdout
        resync = sxsync("connection", "resync", str(gmail), "--stream", "nope")
        assert resync.returncode == 1 and "no stream 'nope'" in resync.stderr
        with stack.rt.sessions() as session:
            assert session.get_one(Connection, gmail).status == "paused"
            actors = {
                (e.action, e.actor)
                for e in session.execute(select(AuditEvent).where(AuditEvent.action.startswith("ops."))).scalars()
            }
        assert actors == {("ops.dead_letters.requeued", "ops:cli"), ("ops.connection.paused", "ops:cli")}
        for command in (("dead-letters", "--help"), ("connection", "resync", "--help")):
            assert sxsync(*command).returncode == 0
