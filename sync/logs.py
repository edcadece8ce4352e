"""Structured JSON logs, one line per event, with anything token-shaped masked."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path

# Bearer headers and the token shapes of the providers we speak to (defence in depth: tokens are
# never passed to a logger on purpose, and the HTTP libraries' loggers are filtered per request).
TOKEN_PATTERN = re.compile(
    r"(?i)(bearer\s+)[\w\-.~+/=]+|ya29\.[\w\-.]+|1//[\w\-.]+|(access_token|refresh_token|code|token)=[^&\s\"']+"
)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_CONTEXT: ContextVar[dict[str, object]] = ContextVar("sxsync_log_context", default={})  # noqa: B039 (never mutated)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add `fields` (org, connection, stream, job…) to every log line written inside the block, by any logger."""
    token = _CONTEXT.set(_CONTEXT.get() | fields)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def redact(text: str) -> str:
    """Mask token-shaped substrings."""
    return TOKEN_PATTERN.sub(lambda m: (m.group(1) or (m.group(2) + "=" if m.group(2) else "")) + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    """`{"at", "level", "logger", "msg", ...extras}` per line, redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        fields = _CONTEXT.get() | extras
        for key, value in fields.items():
            entry[key] = value if isinstance(value, int | float | bool | type(None)) else redact(str(value))
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", log_dir: Path | None = None, *, stderr: bool = True) -> None:
    """Root logging: JSON lines to stderr and/or `log_dir/sxsync.log`."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = JsonFormatter()
    handlers: list[logging.Handler] = []
    if stderr:
        handlers.append(logging.StreamHandler())
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_dir / "sxsync.log", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
