"""The Sandbox: every emulated provider on one loopback port (HTTP or HTTPS), plus the CLI to serve it."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import TracebackType
from typing import Any

from sandbox.google_admin import GoogleAdmin
from sandbox.google_app import GoogleApp
from sandbox.google_state import DEFAULT_CLIENT_ID, GoogleState
from sandbox.http import HttpServer, Request, Response, Router, json_response
from sandbox.hubspot_admin import HubspotAdmin
from sandbox.hubspot_app import HubspotApp
from sandbox.hubspot_auth import DEFAULT_CLIENT_ID as HUBSPOT_CLIENT_ID
from sandbox.hubspot_state import HubspotState
from sandbox.microsoft_admin import MicrosoftAdmin
from sandbox.microsoft_app import MOUNT as MICROSOFT_MOUNT
from sandbox.microsoft_app import MicrosoftApp
from sandbox.microsoft_identity import DEFAULT_CLIENT_ID as MICROSOFT_CLIENT_ID
from sandbox.microsoft_state import MicrosoftState
from sandbox.salesforce_admin import SalesforceAdmin
from sandbox.salesforce_app import SalesforceApp
from sandbox.salesforce_auth import DEFAULT_CLIENT_ID as SALESFORCE_CLIENT_ID
from sandbox.salesforce_state import SalesforceState
from sandbox.tls import generate_certs, server_context
from sandbox.world import World, generate_world


class Sandbox:
    """Serves every emulated provider on one loopback port (http or https)."""

    def __init__(
        self,
        world: World | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        cert_dir: str | None = None,
    ) -> None:
        self.world = world if world is not None else generate_world(0)
        self.host = host
        self.ca_path: str | None = None
        context = None
        if tls:
            paths = generate_certs(cert_dir)
            self.ca_path = paths.ca_path
            context = server_context(paths)
        self.google = GoogleState(self.world, seed=self.world.seed)
        self.router = Router()
        self.router.mount("/google", GoogleApp(self.google))
        self.router.mount("/_sandbox/google", GoogleAdmin(self.google))
        self.microsoft = MicrosoftState(self.world, seed=self.world.seed)
        self.router.mount(MICROSOFT_MOUNT, MicrosoftApp(self.microsoft))
        self.router.mount("/_sandbox/microsoft", MicrosoftAdmin(self.microsoft))
        self.salesforce = SalesforceState(self.world, seed=self.world.seed)
        self.router.mount("/salesforce", SalesforceApp(self.salesforce))
        self.router.mount("/_sandbox/salesforce", SalesforceAdmin(self.salesforce))
        self.hubspot = HubspotState(self.world)
        self.router.mount("/hubspot", HubspotApp(self.hubspot))
        self.router.mount("/_sandbox/hubspot", HubspotAdmin(self.hubspot))
        self.router.mount("/_sandbox/health", self._health)
        self._server = HttpServer(self.router, host, port, context)
        self._started = False

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self._server.scheme}://{host}:{self.port}"

    def _health(self, req: Request) -> Response:
        return json_response({"ok": True, "providers": ["google", "microsoft", "salesforce", "hubspot"]})

    def start(self) -> Sandbox:
        if not self._started:
            self._server.start()
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def google_settings(self) -> dict[str, str]:
        """The product's GOOGLE_* settings pointing at this sandbox."""
        base = self.base_url
        client = self.google.clients[DEFAULT_CLIENT_ID]
        return {
            "GOOGLE_CLIENT_ID": client.client_id,
            "GOOGLE_CLIENT_SECRET": client.client_secret,
            "GOOGLE_AUTH_URL": base + "/google/o/oauth2/v2/auth",
            "GOOGLE_TOKEN_URL": base + "/google/token",
            "GOOGLE_REVOKE_URL": base + "/google/revoke",
            "GOOGLE_API_URL": base + "/google/",
        }

    def microsoft_settings(self) -> dict[str, str]:
        """The product's MICROSOFT_* settings: AUTH_URL is the authority (base + tenant), msal discovers the rest."""
        base = self.base_url + MICROSOFT_MOUNT
        app = self.microsoft.identity.apps[MICROSOFT_CLIENT_ID]
        return {
            "MICROSOFT_CLIENT_ID": app.client_id,
            "MICROSOFT_CLIENT_SECRET": app.client_secret,
            "MICROSOFT_AUTH_URL": base + "/common",
            "MICROSOFT_TOKEN_URL": base + "/common/oauth2/v2.0/token",
            "MICROSOFT_REVOKE_URL": "",
            "MICROSOFT_API_URL": base + "/graph/v1.0/",
        }

    def salesforce_settings(self) -> dict[str, str]:
        """The product's SALESFORCE_* settings: API_URL is the instance URL the token answer also names."""
        base = self.base_url + "/salesforce"
        return {
            "SALESFORCE_CLIENT_ID": SALESFORCE_CLIENT_ID,
            "SALESFORCE_CLIENT_SECRET": self.salesforce.auth.clients[SALESFORCE_CLIENT_ID],
            "SALESFORCE_AUTH_URL": base + "/services/oauth2/authorize",
            "SALESFORCE_TOKEN_URL": base + "/services/oauth2/token",
            "SALESFORCE_REVOKE_URL": base + "/services/oauth2/revoke",
            "SALESFORCE_API_URL": base,
        }

    def hubspot_settings(self) -> dict[str, str]:
        """The product's HUBSPOT_* settings: API_URL is the client library's host (it appends /crm/v3/...)."""
        base = self.base_url + "/hubspot"
        client = self.hubspot.auth.clients[HUBSPOT_CLIENT_ID]
        return {
            "HUBSPOT_CLIENT_ID": client.client_id,
            "HUBSPOT_CLIENT_SECRET": client.client_secret,
            "HUBSPOT_AUTH_URL": base + "/oauth/authorize",
            "HUBSPOT_TOKEN_URL": base + "/oauth/v1/token",
            "HUBSPOT_REVOKE_URL": base + "/oauth/v1/refresh-tokens/",
            "HUBSPOT_API_URL": base,
        }

    def settings(self) -> dict[str, str]:
        """Every provider's settings (plus CA_BUNDLE under TLS), without the SXSYNC_ prefix."""
        out = dict(self.google_settings())
        out.update(self.microsoft_settings())
        out.update(self.salesforce_settings())
        out.update(self.hubspot_settings())
        if self.ca_path is not None:
            out["CA_BUNDLE"] = self.ca_path
        return out


def main(argv: list[str] | None = None) -> int:
    """`python -m sandbox`: serve until Ctrl-C, printing the settings as SXSYNC_* environment lines."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Serve the provider emulators.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a generated CA")
    parser.add_argument("--cert-dir", default=None, help="where the CA and certificate PEMs go (reused)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=300, help="about how many distinct emails to generate")
    args = parser.parse_args(argv)
    world = generate_world(args.seed, size=args.size)
    sandbox = Sandbox(world, host=args.host, port=args.port, tls=args.tls, cert_dir=args.cert_dir).start()
    for key, value in sandbox.settings().items():
        print(f"SXSYNC_{key}={value}")
    print(
        f"# sandbox serving {sandbox.base_url} ({world.message_count()} messages in "
        f"{len(world.members)} mailboxes: {', '.join(world.members)}); Ctrl-C stops",
        file=sys.stderr,
    )
    sys.stdout.flush()
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0
