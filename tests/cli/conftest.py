"""The `sxsync` console script run as a separate process, on a store the test owns."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from models.settings import Settings
from tests.conftest import redis_database, settings_vars

SXSYNC = str(Path(sys.executable).with_name("sxsync"))


def clean_env() -> dict[str, str]:
    """The test's environment without any SXSYNC_* setting (and no colour or width surprises)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SXSYNC_")}
    env |= {"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    return env


def settings_env(settings: Settings) -> dict[str, str]:
    """A running stack's settings as the SXSYNC_* environment of another process."""
    return clean_env() | settings_vars(settings)


@dataclass
class Cli:
    """Runs `sxsync` with a fixed environment, from a directory without a `.env` file."""

    env: dict[str, str]
    cwd: Path
    extra: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SXSYNC, *args],
            cwd=self.cwd,
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run_all(
        self, *commands: tuple[tuple[str, ...], dict[str, str]], timeout: float = 120
    ) -> list[subprocess.CompletedProcess[str]]:
        """Independent commands (args, extra env) at once: the suite pays one interpreter start, not n."""
        procs = [
            (
                args,
                subprocess.Popen(
                    [SXSYNC, *args],
                    cwd=self.cwd,
                    env=self.env | env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
            for args, env in commands
        ]
        done = []
        for args, proc in procs:
            out, err = proc.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess([SXSYNC, *args], proc.returncode, out, err))
        return done

    def ok(self, *args: str, timeout: float = 120, **env: str) -> str:
        """Run, require exit 0 and return stdout."""
        done = self.run(*args, timeout=timeout, **env)
        assert done.returncode == 0, f"sxsync {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        return done.stdout

    def popen(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """A long-running command (web, worker) in its own process group, output to `log`."""
        with log.open("ab") as out:
            return subprocess.Popen(
                [SXSYNC, *args],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def store_env(data_dir: Path, database_url: str, secret_key: str) -> dict[str, str]:
    return clean_env() | {
        "SXSYNC_DATA_DIR": str(data_dir),
        "SXSYNC_DATABASE_URL": database_url,
        "SXSYNC_SECRET_KEYS": secret_key,
    }


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def cli(tmp_path: Path, store_url: str, secret_key: str) -> Cli:
    """`sxsync` on a fresh SQLite or PostgreSQL store."""
    return Cli(store_env(tmp_path / "data", store_url, secret_key), tmp_path)


@pytest.fixture
def sqlite_cli(tmp_path: Path, sqlite_url: str, secret_key: str) -> Cli:
    """`sxsync` on a fresh SQLite store."""
    return Cli(store_env(tmp_path / "data", sqlite_url, secret_key), tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http() -> requests.Session:
    """A client that ignores proxy settings: everything here is on loopback."""
    session = requests.Session()
    session.trust_env = False
    return session


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Poll until `url` answers 200 (or the process dies)."""
    deadline = time.monotonic() + timeout
    client = http()
    while True:
        assert proc.poll() is None, f"the process exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if client.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a process group this test started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Real Redis on a database of its own (the suite's db 0 is flushed by concurrent runs), flushed around."""
    yield from redis_database(12)
