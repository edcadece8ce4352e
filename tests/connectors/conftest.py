"""Connector fixtures: the Google emulator on loopback and access tokens from its real OAuth code+PKCE flow."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from connectors import gmail
from connectors.base import Endpoints, FetchContext
from sandbox.server import Sandbox
from sandbox.world import World, generate_world

REDIRECT_URI = "http://127.0.0.1:9/oauth/callback/google"


def access_token(sb: Sandbox, mailbox: str, scopes: tuple[str, ...] = gmail.scopes) -> str:
    """Sign in as `mailbox` through the emulator's authorize + token endpoints (PKCE S256)."""
    settings = sb.google_settings()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    consent = requests.get(
        settings["GOOGLE_AUTH_URL"],
        params={
            "client_id": settings["GOOGLE_CLIENT_ID"],
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": " ".join(scopes),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "access_type": "offline",
            "login_hint": mailbox,
            "state": secrets.token_urlsafe(8),
        },
        allow_redirects=False,
        verify=sb.ca_path or True,
        timeout=10,
    )
    assert consent.status_code == 302, consent.text
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(consent.headers["location"]).query)["code"][0]
    token = requests.post(
        settings["GOOGLE_TOKEN_URL"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": settings["GOOGLE_CLIENT_ID"],
            "client_secret": settings["GOOGLE_CLIENT_SECRET"],
        },
        verify=sb.ca_path or True,
        timeout=10,
    )
    assert token.status_code == 200, token.text
    return str(token.json()["access_token"])


def context_for(sb: Sandbox, mailbox: str, **overrides: Any) -> FetchContext:
    """A FetchContext for `mailbox` on this sandbox, as the sync layer would hand it."""
    endpoints = Endpoints(api_url=sb.google_settings()["GOOGLE_API_URL"], ca_bundle=sb.ca_path, timeout=10)
    fields: dict[str, Any] = {"now": sb.world.now, "backfill_days": 365, "page_size": 500}
    fields.update(overrides)
    return FetchContext(access_token=access_token(sb, mailbox), endpoints=endpoints, account=mailbox, **fields)


@pytest.fixture(scope="session")
def world() -> World:
    return generate_world(seed=1, size=1200)


@pytest.fixture
def sandbox(world: World) -> Iterator[Sandbox]:
    """A fresh emulator per test (mutations and faults never leak), on the session's generated world."""
    with Sandbox(world, tls=False) as sb:
        yield sb


@pytest.fixture
def make_context() -> Callable[..., FetchContext]:
    """`context_for`, for tests that run a sandbox of their own."""
    return context_for


@pytest.fixture
def ctx_for(sandbox: Sandbox) -> Callable[..., FetchContext]:
    def make(mailbox: str = "alice@acme.test", **overrides: Any) -> FetchContext:
        return context_for(sandbox, mailbox, **overrides)

    return make
