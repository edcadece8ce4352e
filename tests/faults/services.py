"""Private Redis and PostgreSQL servers the fault suite may kill, stop, flush and restart.

The shared services (Redis 6379, PostgreSQL 5432) serve other suites running meanwhile, so the R3-R5
scenarios never touch them: each starts its own `redis-server` (AOF with `appendfsync always`, the
deployment's persistence) or PostgreSQL cluster on a free loopback port in a temporary directory.
PostgreSQL refuses to run as root, so its cluster belongs to the `postgres` OS user when we are root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import psycopg
import redis

PG_USER = "postgres"
START_TIMEOUT = 60.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(ready: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll `ready()` until it holds, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.05)


class RedisServer:
    """A private `redis-server` with the deployment's persistence (AOF, fsync on every write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5)

    def start(self) -> None:
        """Start (or restart on the same port and AOF) and wait until it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        options = {"port": str(self.port), "bind": "127.0.0.1", "dir": str(self.directory), "save": ""}
        options |= {"appendonly": "yes", "appendfsync": "always", "protected-mode": "no"}
        options["logfile"] = str(self.directory / "redis.log")
        argv = [part for name, value in options.items() for part in (f"--{name}", value)]
        self.proc = subprocess.Popen(["redis-server", *argv], start_new_session=True)
        _wait_until(self._answers, f"redis-server on {self.port}")

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.exceptions.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save, only what the AOF already holds survives."""
        if self.proc is not None:
            self._signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None
            self.kills += 1

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def flushall(self) -> None:
        self.client().flushall()

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.resume()
        self.kill()


class PostgresCluster:
    """A private PostgreSQL cluster (trust auth, loopback, a free port) in a temporary directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sxsync-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.restarts = 0
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def url(self, database: str = "postgres") -> str:
        """The owner's (superuser's) SQLAlchemy URL: migrations run as it, the app then works as sxsync_app."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        """A PostgreSQL tool as the cluster's OS user."""
        prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=START_TIMEOUT)

    def start(self) -> None:
        """initdb (first time) and start; `pg_ctl -w` returns once it accepts connections."""
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def restart_immediate(self) -> None:
        """`pg_ctl restart -m immediate`: no checkpoint, every backend killed; recovery replays the WAL."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", "immediate", "-w", "restart")
        self.restarts += 1

    def terminate(self, role: str) -> int:
        """pg_terminate_backend of every session of `role`; how many were ended."""
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres", autocommit=True) as c:
            ended = c.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE usename = %s AND pid <> pg_backend_pid()",
                (role,),
            ).fetchone()
        return int(ended[0]) if ended else 0

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
