"""`python -m sandbox` serves until stopped and prints the product's settings as SXSYNC_* lines."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests


def test_cli_prints_settings_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--size", "60", "--seed", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        env: dict[str, str] = {}
        while "SXSYNC_GOOGLE_API_URL" not in env:
            line = proc.stdout.readline()
            assert line, "sandbox exited early"
            key, _, value = line.strip().partition("=")
            env[key] = value
        assert env["SXSYNC_GOOGLE_CLIENT_ID"] == "sandbox-google-client.apps.googleusercontent.com"
        assert env["SXSYNC_GOOGLE_TOKEN_URL"].endswith("/google/token")
        base = env["SXSYNC_GOOGLE_API_URL"].removesuffix("/google/")
        summary = requests.get(base + "/_sandbox/google/mailboxes", timeout=10).json()
        assert set(summary) == {"alice@acme.test", "bob@acme.test", "carol@acme.test"}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
