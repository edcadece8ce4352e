"""Real caller processes for the token races (S1, S2): threads that ask for one grant's access token at once.

A caller process builds its runtime from the SXSYNC_* environment, as a worker does, and stays alive
across trials (its start costs about a second, a trial a tenth of that). For each trial the test
writes `trial-N.json` into a shared directory while it holds an exclusive `flock` on `gate-N`; every
thread of every process blocks on a shared lock of that gate, so closing it releases all callers
within microseconds. Each thread calls `tokens.access.get_access_token` inside its connection's org
(row-level security), exactly as a page job does, and the process writes its outcomes to
`result-N-P.json`. The trial can kill the lock holder with SIGKILL, or freeze it:

- `before_call`: the first caller that needs the provider, i.e. the one holding the credential's row
  lock, dies before its token call (`client_for` is only asked under the lock);
- `after_response`: the product's own failpoint `after_token_response=kill:1` (models/failpoints.py):
  the provider answered, nothing is saved yet, the lock is still held;
- `freeze_before_call`: the holder's process stops itself (SIGSTOP) before its token call; the test
  resumes it (SIGCONT) once every other process has reported.

Run as `python -m tests.faults.token_callers DIR INDEX FIRST_TRIAL`; `CallerPool` is the test's side.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from models import failpoints
from models.rls import org_scope
from models.tables import Connection, Credential
from sync.runtime import Runtime, get_runtime
from tokens.access import LOCK_WAIT_SECONDS, get_access_token
from tokens.oauth import OAuthClient

REPO = Path(__file__).resolve().parents[2]
Kill = Literal["none", "before_call", "after_response", "freeze_before_call"]
POLL = 0.003  # seconds between looks at the shared directory
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for FOR UPDATE NOWAIT on a locked row
WAIT = 90.0  # the longest any step of a trial may take before the test fails with the callers' logs


@dataclass(frozen=True)
class Trial:
    """What every caller of one trial does: which connections it asks through, and who dies."""

    org_id: int
    connections: tuple[int, ...]
    kill: Kill = "none"
    lock_wait: float = LOCK_WAIT_SECONDS  # get_access_token's bound on waiting for another caller's refresh


@dataclass(frozen=True)
class Outcome:
    """One caller's answer: the credential version and a digest of the token, or the error it got."""

    process: int
    thread: int
    connection: int
    version: int | None
    token_sha: str | None
    error: str | None
    started: float
    ended: float


@dataclass
class TrialResult:
    """The outcomes of the callers that lived, which processes the trial killed or froze, and whether the
    caller killed or frozen before its call held the credential's lock then (None: nobody was)."""

    outcomes: list[Outcome] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    frozen: list[int] = field(default_factory=list)
    holder_held_the_lock: bool | None = None


def token_digest(token: str) -> str:
    """What a caller reports instead of the token itself (no secret in the shared directory)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _write_json(path: Path, value: Any) -> None:
    """Write whole or not at all (the reader polls for the name)."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(value))
    partial.rename(path)


def _claim(path: Path) -> bool:
    """True for exactly one caller across processes."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


# -- the caller process -------------------------------------------------------------------------------


def _await_trial(directory: Path, number: int, parent: int) -> Trial | None:
    """The next trial's spec, or None once the test says stop (or died: no orphan polls for ever)."""
    path = directory / f"trial-{number}.json"
    while not path.exists():
        if (directory / "stop").exists() or os.getppid() != parent:
            return None
        time.sleep(POLL)
    raw = json.loads(path.read_text())
    return Trial(raw["org_id"], tuple(raw["connections"]), raw["kill"], raw["lock_wait"])


def _holds_the_lock(rt: Runtime, connection: int) -> bool:
    """Whether another session is refused the credential's write lock right now (so this caller holds it)."""
    if rt.engine.dialect.name == "sqlite":
        other = sqlite3.connect(rt.engine.url.database or "", timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return True
        finally:
            other.close()
        return False
    query = (
        select(Credential.id)
        .join(Connection, Connection.credential_id == Credential.id)
        .where(Connection.id == connection)
        .with_for_update(of=Credential, nowait=True)
    )
    with rt.writes() as session:  # in the caller's org scope
        try:
            session.execute(query)
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            return True
    return False


def _run_trial(directory: Path, index: int, threads: int, number: int, trial: Trial) -> list[Outcome]:
    """All threads wait on the gate, then ask for the token; the outcomes of those that return."""
    rt = get_runtime()
    trial_dir = directory / f"fp-{number}"
    trial_dir.mkdir(exist_ok=True)
    armed = trial.kill == "after_response"
    failpoints.configure(
        {failpoints.ENV: "after_token_response=kill:1", failpoints.DIR_ENV: str(trial_dir)} if armed else {}
    )

    def client_for_caller(connection: int) -> Callable[[str], OAuthClient]:
        def client_for(provider: str) -> OAuthClient:
            if trial.kill in ("before_call", "freeze_before_call") and _claim(trial_dir / "holder-claimed"):
                held = _holds_the_lock(rt, connection)
                _write_json(trial_dir / "holder.json", {"holds_the_lock": held, "process": index})
                # the row lock's holder dies, or freezes, before it calls the provider
                os.kill(os.getpid(), signal.SIGKILL if trial.kill == "before_call" else signal.SIGSTOP)
            return rt.oauth_client(provider)

        return client_for

    outcomes: list[Outcome] = []
    lock = threading.Lock()
    waiting = threading.Barrier(threads + 1)
    gate = directory / f"gate-{number}"

    def call(thread: int) -> None:
        connection = trial.connections[(index * threads + thread) % len(trial.connections)]
        waiting.wait()
        fd = os.open(gate, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # blocks while the test holds the gate
        finally:
            os.close(fd)
        started = time.time()
        version: int | None = None
        digest: str | None = None
        error: str | None = None
        try:
            with org_scope(trial.org_id):
                token = get_access_token(
                    rt.writes, connection, client_for=client_for_caller(connection), vault=rt.vault, now=rt.clock(),
                    lock_wait=trial.lock_wait,
                )
            version, digest = token.version, token_digest(token.token)
        except Exception as exc:  # reported to the test, which fails on it
            error = f"{type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(Outcome(index, thread, connection, version, digest, error, started, time.time()))

    workers = [threading.Thread(target=call, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    waiting.wait()
    (directory / f"ready-{number}-{index}").touch()
    for worker in workers:
        worker.join()
    return outcomes


def main(argv: list[str]) -> None:
    directory, index, number = Path(argv[0]), int(argv[1]), int(argv[2])
    threads = int(os.environ.get("SXSYNC_TEST_CALLER_THREADS", "4"))
    parent = os.getppid()
    get_runtime()  # settings, engine and vault before the first trial, not during it
    while (trial := _await_trial(directory, number, parent)) is not None:
        outcomes = _run_trial(directory, index, threads, number, trial)
        _write_json(directory / f"result-{number}-{index}.json", [asdict(o) for o in outcomes])
        number += 1


# -- the test's side ------------------------------------------------------------------------------------


@dataclass
class CallerPool:
    """`processes` caller processes of `threads` threads each; a killed one is replaced before the next trial."""

    env: dict[str, str]
    directory: Path
    processes: int = 4
    threads: int = 4
    restarts: int = 0
    trials: int = 0
    _procs: list[subprocess.Popen[bytes] | None] = field(default_factory=list, repr=False)

    def __enter__(self) -> CallerPool:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._procs = [self._start(i) for i in range(self.processes)]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        (self.directory / "stop").touch()
        deadline = time.monotonic() + 10
        for proc in self._procs:
            if proc is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def _start(self, index: int) -> subprocess.Popen[bytes]:
        env = self.env | {"SXSYNC_TEST_CALLER_THREADS": str(self.threads), "PYTHONFAULTHANDLER": "1"}
        return subprocess.Popen(
            [sys.executable, "-m", "tests.faults.token_callers", str(self.directory), str(index), str(self.trials)],
            cwd=REPO,
            env=env,
            stdout=(self.directory / f"caller-{index}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def logs(self) -> str:
        """The callers' output (for a failure message)."""
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:])
            for path in sorted(self.directory.glob("caller-*.log"))
        )

    def _wait(self, what: str, done: Any) -> None:
        deadline = time.monotonic() + WAIT
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"trial {self.trials}: {what} after {WAIT:.0f} s\n{self.logs()}")
            time.sleep(POLL)

    def run(self, trial: Trial) -> TrialResult:
        """One trial: arm the gate, let every process line its threads up, open the gate, collect."""
        number = self.trials
        gate = os.open(self.directory / f"gate-{number}", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)
            _write_json(self.directory / f"trial-{number}.json", asdict(trial))
            for index, proc in enumerate(self._procs):
                assert proc is not None
                ready = self.directory / f"ready-{number}-{index}"
                self._wait(f"caller {index} not ready", lambda p=proc, r=ready: r.exists() or p.poll() is not None)
                if proc.poll() is not None:
                    raise AssertionError(f"caller {index} died before the gate opened\n{self.logs()}")
        finally:
            os.close(gate)  # opens the gate
        result = TrialResult()
        holder = self.directory / f"fp-{number}" / "holder.json"
        frozen = None
        if trial.kill == "freeze_before_call":  # everyone else reports first; then the frozen holder resumes
            self._wait("no caller froze", holder.exists)
            frozen = int(json.loads(holder.read_text())["process"])
        for index in sorted(range(len(self._procs)), key=lambda i: i == frozen):
            proc = self._procs[index]
            assert proc is not None
            if index == frozen:
                os.kill(proc.pid, signal.SIGCONT)
                result.frozen.append(index)
            path = self.directory / f"result-{number}-{index}.json"
            self._wait(f"caller {index} gave no result", lambda p=proc, r=path: r.exists() or p.poll() is not None)
            if path.exists():
                result.outcomes += [Outcome(**raw) for raw in json.loads(path.read_text())]
            else:
                result.killed.append(index)
        if holder.exists():
            result.holder_held_the_lock = bool(json.loads(holder.read_text())["holds_the_lock"])
        self.trials += 1
        for index in result.killed:
            proc = self._procs[index]
            assert proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self.restarts += 1
            self._procs[index] = self._start(index)  # it joins at the next trial
        return result


if __name__ == "__main__":
    main(sys.argv[1:])
