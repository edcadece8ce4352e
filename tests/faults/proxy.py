"""A TCP fault proxy in front of one service (Redis, PostgreSQL, the emulator), its mode switched by the test.

Modes (like toxiproxy's latency, reset_peer and timeout toxics):

- `pass`: bytes flow both ways;
- `latency`: each chunk waits `latency` seconds before it is forwarded (both ways);
- `reset`: every open connection is reset (RST) at once, and every new one as soon as it is accepted;
- `blackhole`: connections are accepted and bytes are read and dropped, nothing ever answers; when the
  blackhole ends its connections are reset (their streams lost bytes, and a real partition that
  heals leaves such connections dead too, once TCP's own timeouts fire).

A userspace proxy's kernel acknowledges every byte, so a client blocked on a blackholed connection is
bounded only by its own read timeout, never by TCP keepalives or `tcp_user_timeout`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["pass", "latency", "reset", "blackhole"]
POLL = 0.05  # how often a pump looks at the mode while no byte arrives


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets an RST, not a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream (None while blackholed from the start)."""

    client: socket.socket
    upstream: socket.socket | None
    blackholed: bool = False
    closed: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            _reset(self.client)
            if self.upstream is not None:
                _reset(self.upstream)


class FaultProxy:
    """Listens on a free loopback port and forwards to `upstream`, misbehaving as `mode` says."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.mode: Mode = "pass"
        self.latency = 0.0
        self.counts: Counter[str] = Counter()  # accepted, reset, blackholed connections
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def set(self, mode: Mode, latency: float = 0.0) -> None:
        """Switch mode; `reset` resets the open connections now, leaving `blackhole` resets its connections."""
        with self._lock:
            leaving_blackhole = self.mode == "blackhole" and mode != "blackhole"
            self.mode, self.latency = mode, latency
            doomed = [
                link for link in self._links if mode == "reset" or (leaving_blackhole and link.blackholed)
            ]
        for link in doomed:
            self.counts["reset"] += 1
            link.close()

    def close(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], POLL)
                if not readable:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            self.counts["accepted"] += 1
            threading.Thread(target=self._open, args=(client,), daemon=True).start()

    def _open(self, client: socket.socket) -> None:
        """Connect upstream (unless the mode refuses) and start one pump per direction."""
        if self.mode == "reset":
            self.counts["reset"] += 1
            _reset(client)
            return
        upstream: socket.socket | None = None
        if self.mode != "blackhole":
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                return
            upstream.settimeout(None)
        link = _Link(client, upstream, blackholed=upstream is None)
        if link.blackholed:
            self.counts["blackholed"] += 1
        with self._lock:
            self._links.add(link)
        pumps = [threading.Thread(target=self._pump, args=(link, True), daemon=True)]
        if upstream is not None:
            pumps.append(threading.Thread(target=self._pump, args=(link, False), daemon=True))
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        link.close()
        with self._lock:
            self._links.discard(link)

    def _pump(self, link: _Link, outbound: bool) -> None:
        """Copy one direction until either side closes, applying the mode to every chunk."""
        source = link.client if outbound else link.upstream
        assert source is not None
        while not link.closed.is_set():
            try:
                readable, _, _ = select.select([source], [], [], POLL)
                if not readable:
                    continue
                chunk = source.recv(65536)
            except (OSError, ValueError):
                break
            if not chunk:
                break
            if self.mode == "blackhole" or link.blackholed:
                if not link.blackholed:
                    link.blackholed = True
                    self.counts["blackholed"] += 1
                continue  # dropped: this link's stream is broken for good
            if self.mode == "latency":
                time.sleep(self.latency)
            target = link.upstream if outbound else link.client
            try:
                assert target is not None
                target.sendall(chunk)
            except OSError:
                break
        link.close()
