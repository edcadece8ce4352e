"""`sxsync demo`: the whole product on the embedded default, driven exactly as a rep would drive it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import uvicorn
from cryptography.fernet import Fernet
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from models.orgs import upsert_member, upsert_org
from models.settings import Settings
from models.tables import Activity, Connection, Contact, Interaction, Rejected, SyncState
from sandbox.server import Sandbox
from sandbox.world import generate_world
from sync.broker import setup_broker
from sync.inprocess import wait_for_chains, worker_threads
from sync.logs import configure_logging
from sync.runtime import Runtime, build_runtime, set_runtime
from sync.scheduler import start_all
from web.app import connect_session, create_app

ORG = "acme"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
CONNECTED = MEMBERS[:2]


class DemoError(RuntimeError):
    """A step of the demo did not do what a rep would see it do."""


def run_demo(*, data_dir: Path | None, size: int, seed: int, quiet: bool) -> dict[str, Any]:
    """Sandbox + store + web + in-process worker: connect, sync, summarize."""
    started = time.monotonic()
    data_dir = (data_dir or Path(".sxsync") / "demo").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    configure_logging("INFO", data_dir / "logs", stderr=False)
    world = generate_world(seed=seed, size=size, org_domain=DOMAIN, members=MEMBERS)
    with Sandbox(world, tls=True, cert_dir=str(data_dir / "sandbox-ca")) as sandbox, _listening() as (sock, port):
        rt = build_runtime(_settings(data_dir, sandbox, port))
        set_runtime(rt)
        broker = setup_broker(rt, "")
        with _serve(rt, sock), worker_threads(broker):
            _seed_org(rt)
            for email in CONNECTED:
                _connect_like_a_rep(rt, email, sandbox.ca_path)
            start_all(rt)
            final = wait_for_chains(rt, timeout=3600)
        summary = _summary(rt, time.monotonic() - started, final.failed)
    set_runtime(None)
    if not quiet:
        _print(summary, data_dir)
    if final.failed:
        raise DemoError(f"{final.failed} sync streams failed; see {data_dir / 'logs'}")
    return summary


def _settings(data_dir: Path, sandbox: Sandbox, port: int) -> Settings:
    """The embedded default (SQLite in DIR, in-process broker) pointed at the sandbox."""
    key_file = data_dir / "secret.key"
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
        key_file.chmod(0o600)
    values: dict[str, Any] = {k.lower(): v for k, v in sandbox.google_settings().items()}
    return Settings(
        **values,
        data_dir=data_dir,
        database_url="",
        broker_url="",
        secret_keys=key_file.read_text().strip(),
        public_url=f"http://127.0.0.1:{port}",
        ca_bundle=sandbox.ca_path or "",
        poll_seconds=3600,
    )


@contextmanager
def _listening() -> Iterator[tuple[socket.socket, int]]:
    """A loopback socket for the web app, bound before the app learns its public URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock, sock.getsockname()[1]
    finally:
        sock.close()


@contextmanager
def _serve(rt: Runtime, sock: socket.socket) -> Iterator[None]:
    """The real web app on a thread, for the consent flow."""
    server = uvicorn.Server(uvicorn.Config(create_app(rt), log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise DemoError("the web app did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _seed_org(rt: Runtime) -> None:
    """The demo org and its three members."""
    with rt.sessions.begin() as session:
        org = upsert_org(session, ORG, [DOMAIN], actor="demo")
        for email in MEMBERS:
            upsert_member(session, org, email, actor="demo")


def _connect_like_a_rep(rt: Runtime, email: str, ca_path: str | None) -> None:
    """Follow the consent flow over HTTP: connect page → provider consent → our callback."""
    browser = requests.Session()
    browser.trust_env = False
    verify: str | bool = ca_path or True
    base = rt.settings.public_url
    token = connect_session(rt, ORG, email)
    page = browser.get(f"{base}/connect", params={"session": token}, timeout=30)
    if page.status_code != 200 or "/connect/google" not in page.text:
        raise DemoError(f"connect page for {email} answered {page.status_code}")
    url = f"{base}/connect/google?session={token}"
    for _ in range(5):
        response = browser.get(url, allow_redirects=False, timeout=30, verify=verify)
        if response.status_code not in (302, 303):
            break
        url = response.headers["location"]
    if response.status_code != 200 or "Connected" not in response.text:
        raise DemoError(f"consent for {email} ended with {response.status_code}")


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
