"""`sxsync dead-letters list|requeue` and `sxsync connection pause|resume|resync|retry`.

The same actions as the dashboard's buttons (sync/ops_actions.py), audited as `ops:cli`. Heavy
imports happen inside the commands so `sxsync --help` stays fast; errors are one line on stderr
(exit 1 for an unknown connection or a refused action, 2 for a settings problem), never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import click

P = ParamSpec("P")
R = TypeVar("R")
ACTOR = "ops:cli"


def _plain_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Known failures become one line on stderr with an exit code."""

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        from models.orgs import AdminError
        from models.settings import SettingsError
        from sync.ops_actions import NotAllowed, NotFound
        from tokens.vault import DecryptError

        try:
            return fn(*args, **kwargs)
        except (NotFound, NotAllowed) as exc:
            click.echo(f"sxsync: {exc}", err=True)
            sys.exit(1)
        except (SettingsError, AdminError, DecryptError) as exc:
            click.echo(f"sxsync: {exc}", err=True)
            sys.exit(2)

    return run


def _runtime() -> Any:
    """The process runtime with its broker (schema brought up to date on start)."""
    from models.settings import get_settings
    from sync.broker import setup_broker
    from sync.logs import configure_logging
    from sync.runtime import get_runtime
    from tokens.vault import vault_from_settings

    settings = get_settings()
    vault_from_settings(settings)
    configure_logging(settings.log_level)
    rt = get_runtime()
    setup_broker(rt)
    if not settings.broker_url:
        click.echo(
            "sxsync: no SXSYNC_BROKER_URL: jobs are not queued for workers; a running scheduler resends them",
            err=True,
        )
    return rt


@click.group("dead-letters")
def dead_letters() -> None:
    """Page jobs that failed every retry: list them, put them back on the queue."""


@dead_letters.command("list")
@click.option("--connection", "connection_id", type=int, default=None, help="Only this connection's.")
@click.option("--org", default=None, help="The connection's org (an id of another org is not found).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_plain_errors
def dead_letters_list(connection_id: int | None, org: str | None, limit: int, as_json: bool) -> None:
    """Dead letters of the sync queue, newest first (the page each names, never its payload)."""
    from sync.dead_letters import list_dead_letters
    from sync.ops_actions import SYNC_QUEUE, dead_letters_of
    from web.queues import current_broker

    rt = _runtime()
    if connection_id is not None:
        letters = dead_letters_of(rt, connection_id, org=org, limit=limit)
    else:
        letters = list_dead_letters(current_broker(), SYNC_QUEUE, limit=limit)
    for letter in letters:
        if as_json:
            click.echo(json.dumps(letter.as_dict()))
        else:
            age = "" if letter.dead_age_seconds is None else f"  died {letter.dead_age_seconds:.0f}s ago"
            click.echo(
                f"{letter.id}  connection {letter.connection_id}  {letter.stream}  v{letter.cursor_version}"
                f"  retries {letter.retries}{age}"
            )
    if not as_json:
        click.echo(f"{len(letters)} dead letter(s)", err=True)


@dead_letters.command("requeue")
@click.option("--connection", "connection_id", type=int, required=True, help="Whose dead letters.")
@click.option("--org", default=None, help="The connection's org (an id of another org is not found).")
@click.option("--id", "handles", multiple=True, help="Only these dead letters (from `list`); default: all.")
@_plain_errors
def dead_letters_requeue(connection_id: int, org: str | None, handles: tuple[str, ...]) -> None:
    """Put a connection's dead letters back on the queue (retries reset), its streams running again."""
    from sync.ops_actions import requeue_dead_letters

    rt = _runtime()
    result = requeue_dead_letters(rt, connection_id, actor=ACTOR, org=org, handles=list(handles) or None)
    click.echo(result.message())


@click.group("connection")
def connection() -> None:
    """Steer one connection: pause, resume, force a resync, retry now."""


def _org_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--org`: refuse a connection of another org."""
    return click.option("--org", default=None, help="The connection's org (an id of another org is not found).")(fn)


@connection.command("pause")
@click.argument("connection_id", type=int)
@_org_option
@_plain_errors
def connection_pause(connection_id: int, org: str | None) -> None:
    """Stop syncing it (its chains end at their next job; nothing is deleted)."""
    from sync.ops_actions import pause_connection

    click.echo(pause_connection(_runtime(), connection_id, actor=ACTOR, org=org).message())


@connection.command("resume")
@click.argument("connection_id", type=int)
@_org_option
@_plain_errors
def connection_resume(connection_id: int, org: str | None) -> None:
    """Sync it again: every idle stream starts now."""
    from sync.ops_actions import resume_connection

    click.echo(resume_connection(_runtime(), connection_id, actor=ACTOR, org=org).message())


@connection.command("resync")
@click.argument("connection_id", type=int)
@click.option("--stream", default=None, help="One stream (default: all of the connection's).")
@_org_option
@_plain_errors
def connection_resync(connection_id: int, stream: str | None, org: str | None) -> None:
    """Forget the cursor and run a full pass that converges to the provider's state."""
    from sync.ops_actions import resync_stream

    click.echo(resync_stream(_runtime(), connection_id, stream, actor=ACTOR, org=org).message())


@connection.command("retry")
@click.argument("connection_id", type=int)
@click.option("--stream", default=None, help="One stream (default: every failed, stalled or waiting one).")
@_org_option
@_plain_errors
def connection_retry(connection_id: int, stream: str | None, org: str | None) -> None:
    """Clear the failure count and send the current page again now."""
    from sync.ops_actions import retry_now

    click.echo(retry_now(_runtime(), connection_id, stream, actor=ACTOR, org=org).message())


def add_ops_commands(group: click.Group) -> None:
    """Register `dead-letters` and `connection` on the `sxsync` group."""
    group.add_command(dead_letters)
    group.add_command(connection)
