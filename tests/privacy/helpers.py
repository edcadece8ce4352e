"""Helpers of the privacy tests: `sxsync` as its own process on a stack's store, and the org-keyed API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from web.stack import Stack

SXSYNC = str(Path(sys.executable).with_name("sxsync"))
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
KEYS = {"acme": "key-acme", "globex": "key-globex"}


def sxsync(stack_or_env: Stack | dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`sxsync ARGS` in a fresh process on the stack's store (or the given SXSYNC_* environment)."""
    env = cli_env(stack_or_env) if isinstance(stack_or_env, Stack) else stack_or_env
    return subprocess.run(
        [SXSYNC, *args],
        env=env | extra,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(env["SXSYNC_DATA_DIR"]).parent,
    )


def cli_env(stack: Stack) -> dict[str, str]:
    """The stack's store and keys as another process's environment (nothing else of the caller's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SXSYNC_")}
    settings = stack.rt.settings
    return env | {
        "SXSYNC_DATA_DIR": str(settings.data_dir),
        "SXSYNC_DATABASE_URL": settings.effective_database_url,
        "SXSYNC_SECRET_KEYS": settings.secret_keys,
        "NO_COLOR": "1",
    }


def api(stack: Stack, method: str, path: str, key: str, **kwargs: object) -> requests.Response:
    """A call to the stack's HTTP API with an org's bearer key."""
    client = requests.Session()
    client.trust_env = False
    return client.request(
        method,
        f"{stack.rt.settings.public_url}{path}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        **kwargs,  # type: ignore[arg-type]
    )
