"""`sxsync`: the command line of every entry point and admin task."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import date
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from models.settings import SettingsError, get_settings
from sandbox.world import DEMO_SEED, DEMO_SIZE
from web.cli_ops import add_ops_commands

P = ParamSpec("P")
R = TypeVar("R")


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Settings and admin errors become one line on stderr and exit code 2, never a traceback."""

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        from models.orgs import AdminError
        from tokens.vault import DecryptError

        try:
            return fn(*args, **kwargs)
        except (SettingsError, AdminError, DecryptError) as exc:
            click.echo(f"sxsync: {exc}", err=True)
            sys.exit(2)

    return run


def _runtime() -> Any:
    """The process runtime (schema brought up to date on start)."""
    from sync.logs import configure_logging
    from sync.runtime import get_runtime
    from tokens.vault import vault_from_settings

    settings = get_settings()
    vault_from_settings(settings)  # a missing key is one line on stderr, before the store is touched
    configure_logging(settings.log_level)
    return get_runtime()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SalesX Activity Sync: OAuth-only activity sync into a contact network."""
    from models.rls import system_scope

    # the operator's shell sees every org (the query layer still filters by --org); privacy jobs and
    # page jobs started from here narrow or audit their own scope
    click.get_current_context().with_resource(system_scope())


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Keep the store and logs here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--size",
    type=click.IntRange(10, 1_000_000),
    default=DEMO_SIZE,
    show_default=True,
    help="Messages in the generated world.",
)
@click.option("--seed", type=int, default=DEMO_SEED, show_default=True, help="Seed of the generated world.")
@friendly
def demo(data_dir: Path | None, as_json: bool, size: int, seed: int) -> None:
    """Sandbox providers + embedded store + in-process worker, end to end."""
    from web.demo import run_demo

    summary = run_demo(data_dir=data_dir, size=size, seed=seed, quiet=as_json)
    if as_json:
        click.echo(json.dumps(summary))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@friendly
def web(host: str, port: int) -> None:
    """Serve the HTTP app (connect pages, OAuth callback, API)."""
    import uvicorn

    from sync.broker import setup_broker
    from web.app import create_app

    rt = _runtime()
    setup_broker(rt)
    uvicorn.run(create_app(rt), host=host, port=port, log_config=None)


@main.command()
@click.option("--processes", type=int, default=2, show_default=True)
@click.option("--threads", type=int, default=4, show_default=True)
@friendly
def worker(processes: int, threads: int) -> None:
    """A Dramatiq worker on SXSYNC_BROKER_URL (`dramatiq worker`: the module that sets the broker)."""
    settings = get_settings()
    if not settings.broker_url:
        raise SettingsError("SXSYNC_BROKER_URL: a worker needs a broker (redis://… or amqp://…)")
    from sync.broker import require_fast_redelivery

    require_fast_redelivery(settings)
    _runtime()  # migrate once before the workers fork
    os.execvp(  # noqa: S606  (become the dramatiq worker)
        sys.executable,
        [
            sys.executable,
            "-m",
            "dramatiq",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "worker",
        ],
    )


@main.command()
@click.option("--period", type=float, default=15.0, show_default=True, help="Seconds between ticks.")
@friendly
def scheduler(period: float) -> None:
    """Enqueue due syncs, re-enqueue stalled ones, decay strengths daily, sweep retention; forever."""
    from sync.broker import setup_broker
    from web.periodic import run_forever

    rt = _runtime()
    setup_broker(rt)
    run_forever(rt, period)


@main.command()
@click.option("--port", type=int, default=8900, show_default=True)
@click.option("--tls", is_flag=True, help="Serve HTTPS with a generated CA.")
@click.option("--size", type=int, default=400, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def sandbox(port: int, tls: bool, size: int, seed: int) -> None:
    """Serve the provider emulators."""
    from sandbox.server import main as sandbox_main

    args = ["--port", str(port), "--size", str(size), "--seed", str(seed)] + (["--tls"] if tls else [])
    sys.exit(sandbox_main(args))


@main.group()
def org() -> None:
    """Orgs and their internal domains."""


@org.command("add")
@click.argument("name")
@click.option("--domain", "domains", multiple=True, required=True, help="An internal email domain (repeatable).")
@friendly
def org_add(name: str, domains: tuple[str, ...]) -> None:
    """Create an org (or replace its domains)."""
    from models.orgs import upsert_org

    rt = _runtime()
    with rt.writes.begin() as session:
        saved = upsert_org(session, name, list(domains), actor="cli")
        click.echo(f"org {saved.slug}: {', '.join(saved.domains)}")


@org.command("policy")
@click.argument("name")
@click.option("--set", "changes", multiple=True, metavar="KEY=VALUE", help="A key to set (JSON value; repeatable).")
@friendly
def org_policy(name: str, changes: tuple[str, ...]) -> None:
    """Show the org's policy, or change keys of it (e.g. --set disconnect_grace_days=14 --set retention_days=180)."""
    from pydantic import ValidationError

    from connectors.registry import CONNECTORS
    from models.org_policy import PolicyChanges
    from models.orgs import AdminError, require_org, set_policy

    rt = _runtime()
    with rt.writes.begin() as session:
        saved = require_org(session, name)
        if changes:
            try:
                wanted = PolicyChanges.model_validate(dict(_key_value(change) for change in changes))
            except ValidationError as exc:
                why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise AdminError(f"policy not changed: {why}") from None
            set_policy(session, saved, wanted, actor="cli", known_sources=CONNECTORS)
        click.echo(json.dumps(saved.policy, sort_keys=True))


def _key_value(raw: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as JSON when it is JSON (14, true, ["gmail"]), else as a string."""
    from models.orgs import AdminError

    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise AdminError(f"expected KEY=VALUE, got {raw!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


@main.group()
def member() -> None:
    """Members of an org (reps)."""


@member.command("add")
@click.argument("org_name")
@click.argument("email")
@friendly
def member_add(org_name: str, email: str) -> None:
    """Add a member."""
    from models.orgs import require_org, upsert_member

    rt = _runtime()
    with rt.writes.begin() as session:
        saved = upsert_member(session, require_org(session, org_name), email, actor="cli")
        click.echo(f"member {saved.email} of {org_name}")


@member.command("end")
@click.argument("org_name")
@click.argument("email")
@click.option("--on", "ended_on", type=click.DateTime(formats=["%Y-%m-%d"]), required=True)
@friendly
def member_end(org_name: str, email: str, ended_on: Any) -> None:
    """End a membership (starts the retention clock)."""
    from models.orgs import require_org, upsert_member

    rt = _runtime()
    day: date = ended_on.date()
    with rt.writes.begin() as session:
        saved = upsert_member(session, require_org(session, org_name), email, actor="cli", ended_on=day)
        click.echo(f"membership of {saved.email} ends on {day.isoformat()}")


@main.command("connect-url")
@click.option("--org", "org_name", required=True)
@click.option("--user", "email", required=True)
@click.option("--provider", default=None, help="Link straight to one provider's consent.")
@friendly
def connect_url_cmd(org_name: str, email: str, provider: str | None) -> None:
    """Print a signed, short-lived consent URL for a rep."""
    from models.orgs import AdminError, find_member, require_org
    from web.app import connect_session

    rt = _runtime()
    with rt.sessions() as session:
        found = find_member(session, require_org(session, org_name), email)
        if found is None:
            raise AdminError(f"{email} is not a member of {org_name}")
        token = connect_session(rt, org_name, found.email)
    path = f"/connect/{provider}" if provider else "/connect"
    click.echo(f"{rt.settings.public_url}{path}?session={token}")


@main.command()
@click.option("--org", "org_name", default=None)
@click.option("--wait", is_flag=True, help="Run until every sync chain has finished; non-zero if one failed.")
@friendly
def sync(org_name: str | None, wait: bool) -> None:
    """Sync every active connection (of ORG) now."""
    from models.orgs import require_org
    from sync.broker import setup_broker
    from sync.inprocess import worker_threads
    from sync.scheduler import start_all

    rt = _runtime()
    broker = setup_broker(rt)
    org_id = None
    if org_name:
        with rt.sessions() as session:
            org_id = require_org(session, org_name).id
    if not rt.settings.broker_url:
        with worker_threads(broker):
            started = start_all(rt, org_id)
            failed = _wait(rt, org_id, started)
    else:
        started = start_all(rt, org_id)
        if not wait:
            click.echo(f"enqueued {started} streams")
            return
        failed = _wait(rt, org_id, started)
    if failed:
        click.echo(f"{failed} sync streams failed; see `sxsync status`", err=True)
        sys.exit(1)


def _wait(rt: Any, org_id: int | None, started: int) -> int:
    """Wait for the chains with a progress bar; return how many failed."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from sync.inprocess import wait_for_chains

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task(f"syncing {started} streams", total=None)
        final = wait_for_chains(
            rt,
            org_id,
            on_progress=lambda p: bar.update(
                task, description=f"{p.running} running · {p.pages} pages · {p.records} records"
            ),
        )
    click.echo(f"synced: {final.pages} pages, {final.records} records, {final.failed} failed")
    return final.failed


@main.command()
@click.option("--json", "as_json", is_flag=True)
@friendly
def status(as_json: bool) -> None:
    """Connections and their streams: status, lag, failures."""
    from web.status import collect_status, print_status

    rt = _runtime()
    report = collect_status(rt)
    if as_json:
        click.echo(json.dumps(report))
    else:
        print_status(report)


@main.command()
@click.option("--org", "org_name", required=True)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines (the default output is JSON Lines too).")
@friendly
def contacts(org_name: str, as_json: bool) -> None:
    """The normalized network, one contact per line in JSON Lines."""
    from models.network import iter_contacts
    from models.orgs import require_org

    rt = _runtime()
    with rt.sessions() as session:
        for item in iter_contacts(session, require_org(session, org_name).id):
            click.echo(json.dumps(item, ensure_ascii=False))


@main.command("opt-out")
@click.argument("identity")
@friendly
def opt_out_cmd(identity: str) -> None:
    """Suppress an address or phone everywhere and erase what is held about it."""
    from privacy.optout import NotAnIdentity, opt_out

    rt = _runtime()
    try:
        done = opt_out(rt, identity, actor="cli")
    except NotAnIdentity as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"opted out (reference {done.reference}): {done.erased} records erased in {done.orgs} orgs")


@main.command("retention-sweep")
@friendly
def retention_sweep_cmd() -> None:
    """Delete the data of memberships that ended more than the retention period ago, and of disconnects
    whose grace period has passed."""
    from privacy.disconnect import purge_due_disconnects
    from privacy.retention import sweep_retention

    rt = _runtime()
    swept = sweep_retention(rt)
    for item in swept:
        click.echo(f"{item.org}: member {item.member_id}: {item.connections} connections, {item.erased} records erased")
    purged = purge_due_disconnects(rt)
    for done in purged:
        click.echo(f"{done.org}: disconnected connection {done.connection_id}: {done.erased} records erased")
    click.echo(f"{len(swept)} memberships swept, {len(purged)} disconnected connections purged")


@main.group()
def apikey() -> None:
    """Org-scoped API keys."""


@apikey.command("create")
@click.option("--org", "org_name", required=True)
@friendly
def apikey_create(org_name: str) -> None:
    """Print a new API key for ORG (only its hash is stored)."""
    from models.orgs import create_api_key, require_org

    rt = _runtime()
    with rt.writes.begin() as session:
        click.echo(create_api_key(session, require_org(session, org_name), actor="cli"))


@main.command("export")
@click.argument("identity")
@friendly
def export_cmd(identity: str) -> None:
    """Everything held about a person (EMAIL or phone), across every org, as one JSON document."""
    from privacy.export import export_subject
    from privacy.optout import NotAnIdentity

    rt = _runtime()
    try:
        document = export_subject(rt, identity, actor="cli")
    except NotAnIdentity as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


@main.command("rotate-keys")
@click.option("--check", is_flag=True, help="Only verify that stored secrets decrypt; count the newest key's.")
@friendly
def rotate_keys_cmd(check: bool) -> None:
    """Re-encrypt every stored secret under the newest SXSYNC_SECRET_KEYS key, so older keys can be retired."""
    from privacy.keys import check_keys, rotate_keys

    rt = _runtime()
    if not check:
        click.echo(f"re-encrypted {rotate_keys(rt, actor='cli')} stored secrets under the newest key")
    found = check_keys(rt)
    click.echo(f"{found.under_newest} of {found.total} stored secrets are under the newest key")
    if found.under_newest != found.total:
        click.echo("older keys are still needed: run `sxsync rotate-keys`", err=True)
        sys.exit(1)


@main.command("audit")
@click.option("--org", "org_name", default=None, help="One org's events (default: every org and cross-org events).")
@click.option("--since", default=None, help="ISO 8601 date or time (inclusive).")
@click.option("--until", default=None, help="ISO 8601 date or time (exclusive).")
@click.option("--action", default=None, help="An action, or a prefix such as `token.*`.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, newest first.")
@friendly
def audit_cmd(
    org_name: str | None, since: str | None, until: str | None, action: str | None, limit: int, as_json: bool
) -> None:
    """The audit log: token uses, connects, disconnects, opt-outs, exports, sweeps, admin actions."""
    from models.orgs import require_org
    from models.rls import all_orgs, scoped
    from privacy.audit import AuditQuery, BadQuery, parse_when, query_audit

    rt = _runtime()
    try:
        with rt.sessions() as session:
            org_id = require_org(session, org_name).id if org_name else None
            if org_id is None:
                all_orgs(session, actor="cli", reason="audit.query")
            else:
                scoped(session, org_id)
            query = AuditQuery(org_id, parse_when(since), parse_when(until), action, limit)
            entries, more = query_audit(session, query)
            session.commit()
    except BadQuery as exc:
        raise click.UsageError(str(exc)) from None
    for entry in entries:
        if as_json:
            click.echo(json.dumps(entry, ensure_ascii=False))
        else:
            click.echo(
                f"{entry['at']}  {entry['action']:<24} {entry['actor']:<24} {entry['target']}  "
                f"{json.dumps(entry['details'], ensure_ascii=False)}"
            )
    if more and not as_json:
        click.echo(f"(more than {limit}: narrow with --since/--until or raise --limit)", err=True)


if __name__ == "__main__":
    main()


add_ops_commands(main)
