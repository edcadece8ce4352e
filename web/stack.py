"""The whole product wired on one machine: sandbox, store, web app, broker and workers.

The demo runs on it, and so do the end-to-end tests, so both drive the product the same way a
rep and an operator would: over HTTP, through the real OAuth flow and real Dramatiq jobs.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import requests
import uvicorn
from cryptography.fernet import Fernet

from models.orgs import upsert_member, upsert_org
from models.rls import system_scope
from models.settings import Settings
from sandbox.server import Sandbox
from sandbox.world import World
from sync.broker import setup_broker
from sync.inprocess import Progress, wait_for_chains, worker_threads
from sync.runtime import Runtime, build_runtime, set_runtime
from sync.scheduler import start_all
from web.app import connect_session, create_app


class DemoError(RuntimeError):
    """A step did not do what a rep would see it do."""


@dataclass
class Stack:
    """A running product and its sandbox."""

    rt: Runtime
    sandbox: Sandbox
    broker: dramatiq.Broker

    def seed_org(self, org: str, domain: str, members: tuple[str, ...], policy: dict[str, Any] | None = None) -> None:
        """An org (with its policy, e.g. `{"sources": ["gmail"]}`) and its members."""
        with self.rt.writes.begin() as session:
            saved = upsert_org(session, org, [domain], actor="stack")
            if policy is not None:
                saved.policy = policy
            for email in members:
                upsert_member(session, saved, email, actor="stack")

    def connect(self, org: str, email: str, provider: str = "google") -> requests.Response:
        """Follow the consent flow over HTTP as the rep's browser: connect page → provider → callback."""
        browser = requests.Session()
        browser.trust_env = False
        verify: str | bool = self.sandbox.ca_path or True
        base = self.rt.settings.public_url
        token = connect_session(self.rt, org, email)
        page = browser.get(f"{base}/connect", params={"session": token}, timeout=30)
        if page.status_code != 200 or f"/connect/{provider}" not in page.text:
            raise DemoError(f"connect page for {email} answered {page.status_code}")
        url = f"{base}/connect/{provider}?session={token}"
        for _ in range(5):
            response = browser.get(url, allow_redirects=False, timeout=30, verify=verify)
            if response.status_code not in (302, 303):
                break
            url = response.headers["location"]
        if response.status_code != 200 or "Connected" not in response.text:
            raise DemoError(f"consent for {email} ended with {response.status_code}")
        return response

    def sync(self, org_id: int | None = None, timeout: float = 600) -> Progress:
        """Start every active stream now and wait until the chains finish."""
        start_all(self.rt, org_id)
        return wait_for_chains(self.rt, org_id, timeout=timeout)


def stack_settings(data_dir: Path, sandbox: Sandbox, port: int, **overrides: Any) -> Settings:
    """The embedded default (SQLite in DIR, in-process broker) pointed at the sandbox."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "secret.key"
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
        key_file.chmod(0o600)
    values: dict[str, Any] = {k.lower(): v for k, v in sandbox.settings().items() if k != "CA_BUNDLE"}
    values |= {
        "data_dir": data_dir,
        "database_url": "",
        "broker_url": "",
        "secret_keys": key_file.read_text().strip(),
        "public_url": f"http://127.0.0.1:{port}",
        "ca_bundle": sandbox.ca_path or "",
        "poll_seconds": 3600,
        "start_on_connect": False,  # tests and the demo start syncs themselves (tick, `stack.sync`)
    }
    return Settings(**(values | overrides))


@contextmanager
def running_stack(
    *, data_dir: Path, world: World, tls: bool = True, workers: int = 4, **overrides: Any
) -> Iterator[Stack]:
    """Sandbox, web app on a loopback port, broker (in-process unless overridden) and worker threads."""
    with ExitStack() as stack:
        sandbox = stack.enter_context(Sandbox(world, tls=tls, cert_dir=str(data_dir / "sandbox-ca")))
        sock = stack.enter_context(_listening())
        rt = build_runtime(stack_settings(data_dir, sandbox, sock.getsockname()[1], **overrides))
        set_runtime(rt)
        stack.callback(set_runtime, None)
        stack.callback(rt.engine.dispose)
        broker = setup_broker(rt)
        stack.enter_context(_serve(rt, sock))
        if workers:
            stack.enter_context(worker_threads(broker, workers))
        stack.enter_context(system_scope())  # the caller (demo, tests) is the operator; jobs and requests scope alone
        yield Stack(rt, sandbox, broker)


@contextmanager
def _listening() -> Iterator[socket.socket]:
    """A loopback socket for the web app, bound before the app learns its public URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


@contextmanager
def _serve(rt: Runtime, sock: socket.socket) -> Iterator[None]:
    """The real web app on a thread."""
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
