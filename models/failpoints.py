"""Named failpoints: deterministic crashes at the places a random kill rarely lands (fault tests only).

The product calls `failpoint(name, connection_id)` at four places:

- `after_fetch`: the page was fetched from the provider, nothing is stored yet (sync/pipeline.py);
- `after_commit`: the page's records and the cursor after it are committed, the next page is not
  enqueued and the message is not acked (sync/pipeline.py);
- `after_checkpoint`: the next page is enqueued and `enqueued_version` recorded (the chain's
  checkpoint; for a stream's last page, right after its commit), the message is not acked yet
  (sync/pipeline.py);
- `after_token_response`: the provider answered a token refresh, the new tokens are not saved and
  the credential's row lock is still held (tokens/access.py).

They do nothing unless `SXSYNC_FAILPOINTS` is set in the process's environment, read once at import
(so a worker gets it from the environment it is started with; an unset variable costs one test of
an empty dict per call). It is a test hook: it is not a setting (`models.settings` never reads it)
and no production configuration sets it. The value is a comma-separated list of

    NAME=ACTION[:TIMES][@CONNECTION]

- ACTION `kill` sends SIGKILL to the calling process (no `finally`, no ack, no rollback but the
  database's own); `raise` raises `FailpointFired` (for in-process tests);
- TIMES fires it only the first TIMES times the point is reached (`after_commit=kill:1`); without
  it, it fires every time (`after_fetch=kill`);
- CONNECTION fires it only for that connection id (`after_fetch=kill@7`, `after_fetch=kill:2@7`).

A point with TIMES counts across process restarts (a killed worker comes back with the same
environment), so it needs `SXSYNC_FAILPOINT_DIR`: each point keeps the number of times it was
reached in `DIR/NAME[@CONNECTION].hits`, read and bumped under an exclusive `flock`; the arrival
whose count is at most TIMES fires, still holding the lock, so threads of one process arriving
together cost one count per dead process, not one each (`kill:3` is three deaths). Points without
TIMES count there too when the directory is set (tests read `hits()`), and need no directory
otherwise. A malformed value, an unknown name, or TIMES without a directory raises `ValueError`
at import: the worker refuses to start, loudly.

It lives in models/ (which imports nothing of ours) only so that tokens/ may call it within DESIGN.md's rooms.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("sxmodels.failpoints")

ENV = "SXSYNC_FAILPOINTS"
DIR_ENV = "SXSYNC_FAILPOINT_DIR"
NAMES = frozenset({"after_fetch", "after_commit", "after_checkpoint", "after_token_response"})
Action = Literal["kill", "raise"]
_WIDTH = 20  # the counter file holds one zero-padded number, rewritten in place


class FailpointFired(RuntimeError):
    """A `raise` failpoint was reached."""


@dataclass(frozen=True)
class Failpoint:
    """One armed point: what it does, how many times, for which connection."""

    name: str
    action: Action
    times: int | None = None
    connection_id: int | None = None

    @property
    def key(self) -> str:
        """The counter file's stem."""
        return self.name if self.connection_id is None else f"{self.name}@{self.connection_id}"


def parse(spec: str, directory: str | None) -> dict[str, list[Failpoint]]:
    """`SXSYNC_FAILPOINTS`'s value as armed points by name (ValueError on anything doubtful)."""
    points: dict[str, list[Failpoint]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, rest = item.partition("=")
        name = name.strip()
        if not sep or name not in NAMES:
            raise ValueError(f"{ENV}: {item!r} is not NAME=ACTION[:TIMES][@CONNECTION] with NAME in {sorted(NAMES)}")
        rest, at, scope = rest.partition("@")
        action, colon, times_text = rest.partition(":")
        if action not in ("kill", "raise"):
            raise ValueError(f"{ENV}: {item!r}: the action must be kill or raise")
        try:
            times = int(times_text) if colon else None
            connection_id = int(scope) if at else None
        except ValueError:
            raise ValueError(f"{ENV}: {item!r}: TIMES and CONNECTION are integers") from None
        if times is not None and times < 1:
            raise ValueError(f"{ENV}: {item!r}: TIMES must be at least 1")
        if times is not None and not directory:
            raise ValueError(f"{ENV}: {item!r} counts across restarts: set {DIR_ENV} to a shared directory")
        point = Failpoint(name, "kill" if action == "kill" else "raise", times, connection_id)
        points.setdefault(name, []).append(point)
    return points


_points: dict[str, list[Failpoint]] = {}
_directory: Path | None = None


def configure(env: Mapping[str, str]) -> None:
    """Arm the points `env` names (at import: the process's environment; tests may call it again)."""
    global _points, _directory
    directory = env.get(DIR_ENV) or None
    _points = parse(env.get(ENV, ""), directory)
    _directory = Path(directory) if directory else None
    if _points:
        log.warning("failpoints armed: %s", env.get(ENV))


def failpoint(name: str, connection_id: int | None = None) -> None:
    """Fire the point `name` if it is armed (for this connection, and still has times left)."""
    if not _points:
        return
    for point in _points.get(name, ()):
        if point.connection_id is None or point.connection_id == connection_id:
            _arrive(point)


def _arrive(point: Failpoint) -> None:
    """Count one more arrival (in the directory, under its lock) and fire if the count says so.

    It fires while it still holds the counter's lock: another thread of this process that arrives
    meanwhile waits on the lock and dies with the process, so `kill:N` is N dead processes.
    """
    if _directory is None:
        _fire(point, None)  # uncounted: only points without TIMES get here
        return
    fd = os.open(_directory / f"{point.key}.hits", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, _WIDTH, 0).strip()
        count = int(raw or b"0") + 1
        os.pwrite(fd, str(count).zfill(_WIDTH).encode(), 0)
        if point.times is None or count <= point.times:
            _fire(point, count)
    finally:
        os.close(fd)  # closing drops the lock (so does the death of the process)


def _fire(point: Failpoint, count: int | None) -> None:
    log.warning("failpoint %s fires (%s, arrival %s)", point.key, point.action, count or "uncounted")
    if point.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointFired(f"failpoint {point.key} fired")


def hits(directory: Path, name: str, connection_id: int | None = None) -> int:
    """How many times a counted point was reached (for tests and reports)."""
    key = name if connection_id is None else f"{name}@{connection_id}"
    try:
        raw = (directory / f"{key}.hits").read_bytes().strip()
    except FileNotFoundError:
        return 0
    return int(raw or b"0")


configure(os.environ)
