"""`sxsync demo`: the whole product on the embedded default, driven exactly as a rep would drive it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from models.tables import Activity, Connection, Contact, Interaction, Rejected, SyncState
from sandbox.world import generate_world
from sync.connections import sources_of
from sync.logs import configure_logging
from sync.runtime import Runtime
from web.app import PROVIDER_TEXT
from web.stack import DemoError, running_stack

PROVIDERS = tuple(PROVIDER_TEXT)  # every provider with a registered source is connected, as a rep would

ORG = "acme"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
CONNECTED = MEMBERS[:2]


def run_demo(*, data_dir: Path | None, size: int, seed: int, quiet: bool) -> dict[str, Any]:
    """Sandbox + store + web + in-process worker: connect, sync, summarize."""
    started = time.monotonic()
    data_dir = (data_dir or Path(".sxsync") / "demo").resolve()
    configure_logging("INFO", data_dir / "logs", stderr=False)
    world = generate_world(seed=seed, size=size, org_domain=DOMAIN, members=MEMBERS)
    with running_stack(data_dir=data_dir, world=world) as stack:
        stack.seed_org(ORG, DOMAIN, MEMBERS)
        for email in CONNECTED:
            for provider in PROVIDERS:
                if sources_of(provider):
                    stack.connect(ORG, email, provider)
        final = stack.sync(timeout=3600)
        summary = _summary(stack.rt, time.monotonic() - started, final.failed)
    if not quiet:
        _print(summary, data_dir)
    if final.failed:
        raise DemoError(f"{final.failed} sync streams failed; see {data_dir / 'logs'}")
    return summary


def _summary(rt: Runtime, seconds: float, failed: int) -> dict[str, Any]:
    """The DESIGN.md summary object."""
    with rt.sessions() as session:
        providers: dict[str, dict[str, int]] = {}
        for source, records, calls in session.execute(
            select(Connection.source, func.sum(SyncState.records_total), func.sum(SyncState.api_calls_total))
            .join(SyncState, SyncState.connection_id == Connection.id)
            .group_by(Connection.source)
        ):
            providers[source] = {"records": int(records or 0), "api_calls": int(calls or 0)}

        def count(query: Any) -> int:
            return int(session.execute(query).scalar_one())

        return {
            "org": ORG,
            "providers": providers,
            "contacts": count(select(func.count()).select_from(Contact).where(Contact.status == "active")),
            "activities": count(select(func.count()).select_from(Activity)),
            "interactions": count(select(func.count()).select_from(Interaction)),
            "rejected": count(select(func.count()).select_from(Rejected)),
            "failed": failed,
            "seconds": round(seconds, 2),
        }


def _print(summary: dict[str, Any], data_dir: Path) -> None:
    """The human summary."""
    console = Console()
    table = Table(title=f"sxsync demo: org {summary['org']}")
    table.add_column("source")
    table.add_column("records", justify="right")
    table.add_column("API calls", justify="right")
    for name, figures in summary["providers"].items():
        table.add_row(name, str(figures["records"]), str(figures["api_calls"]))
    console.print(table)
    console.print(
        f"{summary['contacts']} contacts, {summary['activities']} activities, "
        f"{summary['interactions']} interactions, {summary['rejected']} rejected records, "
        f"{summary['seconds']} s\nstore: {data_dir / 'sxsync.db'}   logs: {data_dir / 'logs'}"
    )
