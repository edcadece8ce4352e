"""Keep secrets out of the HTTP stack's own logs (urllib3 logs request paths at DEBUG)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

MASK = "[redacted]"
_HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "requests")
_local = threading.local()
_install_lock = threading.Lock()
_installed = False


class SecretFilter(logging.Filter):
    """Masks the secrets the current thread has in flight in any record it logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        active: list[str] = getattr(_local, "secrets", [])
        if not active:
            return True
        message = record.getMessage()
        masked = mask(message, active)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def mask(text: str, secrets: list[str]) -> str:
    """`text` with every non-empty secret replaced by a mask."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


@contextmanager
def hiding(*secrets: str | None) -> Iterator[None]:
    """While the block runs on this thread, HTTP-library logs mask these values."""
    install()
    stack: list[str] = getattr(_local, "secrets", [])
    added = [s for s in secrets if s]
    _local.secrets = stack + added
    try:
        yield
    finally:
        _local.secrets = stack


def install() -> None:
    """Attach the filter to the HTTP libraries' loggers once per process."""
    global _installed
    with _install_lock:
        if _installed:
            return
        secret_filter = SecretFilter()
        for name in _HTTP_LOGGERS:
            logging.getLogger(name).addFilter(secret_filter)
        _installed = True
