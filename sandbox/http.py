"""HTTP plumbing (request/response values, prefix router, threaded keep-alive server) for emulators."""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import ssl
import sys
import threading
import traceback
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JSON_TYPE = "application/json; charset=UTF-8"


@dataclass(slots=True)
class Request:
    """One HTTP request as an emulator sees it; `path` is relative to the handler's mount point."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    client: str = ""  # remote IP
    full_path: str = ""  # path as received, before the mount prefix was stripped
    base_url: str = ""  # scheme://host:port of this server
    in_batch: bool = False

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def form(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body.strip() else {}


@dataclass(slots=True)
class Response:
    """Status, ordered headers and body bytes."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low:
                return value
        return None


Handler = Callable[[Request], Response]


def json_response(obj: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Response:
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"
    return Response(status, [("Content-Type", JSON_TYPE), *headers], body)


def text_response(text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
    return Response(status, [("Content-Type", content_type)], text.encode("utf-8"))


def redirect(location: str, status: int = 302) -> Response:
    return Response(
        status,
        [("Location", location), ("Content-Type", "text/html; charset=UTF-8")],
        f'<a href="{location}">moved</a>'.encode(),
    )


def add_query(url: str, params: Iterable[tuple[str, str]]) -> str:
    """Append parameters to a URL that may already carry a query."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def parse_target(target: str) -> tuple[str, dict[str, list[str]]]:
    """Split a request target into (path, query)."""
    parts = urllib.parse.urlsplit(target)
    return parts.path or "/", {name: list(values) for name, values in _parsed_query(parts.query).items()}


@functools.lru_cache(maxsize=256)
def _parsed_query(query: str) -> dict[str, list[str]]:
    """parse_qs, once per query text: a batch's parts differ in their path, not in their query."""
    return urllib.parse.parse_qs(query, keep_blank_values=True)


class Router:
    """Dispatches to the handler with the longest matching mount prefix; strips the prefix."""

    def __init__(self) -> None:
        self._mounts: list[tuple[str, Handler]] = []

    def mount(self, prefix: str, handler: Handler) -> None:
        self._mounts.append((prefix.rstrip("/"), handler))
        self._mounts.sort(key=lambda m: -len(m[0]))

    def __call__(self, request: Request) -> Response:
        for prefix, handler in self._mounts:
            if request.path == prefix or request.path.startswith(prefix + "/"):
                request.path = request.path[len(prefix) :] or "/"
                return handler(request)
        return text_response("Not Found", 404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: Handler, context: ssl.SSLContext | None) -> None:
        self.app = app
        self.context = context
        self.scheme = "https" if context is not None else "http"
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _RequestHandler)
        self.host_port = f"{address[0]}:{self.server_address[1]}"

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.context is not None:
            # handshake happens in the connection's own thread, never in the accept loop
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.conn_lock:
            self.connections.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
            self.connections.clear()
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, OSError)):
            return  # clients hanging up or refusing our certificate are not server bugs
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as real front ends set it: without it a body written after its headers waits for the
    # client's delayed ACK of them, 40 ms on Linux for every answer on a keep-alive connection but the first
    disable_nagle_algorithm = True
    server_version = "sandbox"
    sys_version = ""
    timeout = 120
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        path, query = parse_target(self.path)
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            low = key.lower()
            headers[low] = f"{headers[low]}, {value}" if low in headers else value
        host = headers.get("host") or self.server.host_port
        request = Request(
            method=self.command,
            path=path,
            query=query,
            headers=headers,
            body=body,
            client=str(self.client_address[0]),
            full_path=path,
            base_url=f"{self.server.scheme}://{host}",
        )
        try:
            response = self.server.app(request)
        except Exception:
            traceback.print_exc()
            response = text_response("Internal sandbox error", 500)
        self.send_response(response.status)
        for key, value in response.headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class HttpServer:
    """Runs a handler on a loopback port in a daemon thread."""

    def __init__(
        self, app: Handler, host: str = "127.0.0.1", port: int = 0, context: ssl.SSLContext | None = None
    ) -> None:
        self._server = _Server((host, port), app, context)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def scheme(self) -> str:
        return self._server.scheme

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sandbox-http-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.close_all()
        self._server.server_close()
