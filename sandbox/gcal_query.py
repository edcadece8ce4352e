"""Query-parameter readers shared by the Calendar and People emulators: a value, or the error to answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sandbox.http import Request, Response

BadRequest = Callable[[str], Response]


class ArgError(Exception):
    """A query parameter Google would refuse; `response` is the answer to send."""

    def __init__(self, response: Response) -> None:
        super().__init__("bad argument")
        self.response = response


def int_arg(req: Request, name: str, default: int, bad: BadRequest) -> int:
    raw = req.arg(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ArgError(bad(f"Invalid value '{raw}' for {name}: not an integer")) from None


def bool_arg(req: Request, name: str, bad: BadRequest) -> bool | None:
    """True/False when given, None when absent."""
    raw = req.arg(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise ArgError(bad(f"Invalid value '{raw}' for boolean parameter {name}"))
    return raw.lower() == "true"


def time_arg(req: Request, name: str, bad: BadRequest) -> datetime | None:
    """An RFC 3339 timestamp with a mandatory offset ("Z" or ±hh:mm)."""
    raw = req.arg(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ArgError(bad(f"Invalid value for {name}: {raw}")) from None
    if value.tzinfo is None:
        raise ArgError(bad(f"Invalid value for {name}: {raw} (a time zone offset is required)"))
    return value
