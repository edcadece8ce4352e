"""The control routes every emulator shares: counters, knobs and fault plans."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from sandbox.faults import FaultInjector
from sandbox.http import Request

Action = Callable[[Request, list[str]], Any]


class Controllable(Protocol):
    """What an emulator state offers its control API."""

    faults: FaultInjector

    def stats_snapshot(self) -> Any: ...
    def reset_stats(self) -> None: ...
    def knobs(self) -> Any: ...
    def configure(self, **knobs: Any) -> None: ...


def common_routes(state: Controllable) -> list[tuple[str, re.Pattern[str], Action]]:
    """GET/POST stats, config and faults, the same on every emulator."""

    def reset(req: Request, p: list[str]) -> Any:
        state.reset_stats()
        return {}

    def configure(req: Request, p: list[str]) -> Any:
        state.configure(**req.json())
        return state.knobs()

    def set_faults(req: Request, p: list[str]) -> Any:
        state.faults.configure(req.json())
        return state.faults.snapshot()

    def clear_faults(req: Request, p: list[str]) -> Any:
        state.faults.clear()
        return state.faults.snapshot()

    return [
        ("GET", re.compile(r"^/stats$"), lambda r, p: state.stats_snapshot()),
        ("POST", re.compile(r"^/stats/reset$"), reset),
        ("GET", re.compile(r"^/config$"), lambda r, p: state.knobs()),
        ("POST", re.compile(r"^/config$"), configure),
        ("GET", re.compile(r"^/faults$"), lambda r, p: state.faults.snapshot()),
        ("POST", re.compile(r"^/faults$"), set_faults),
        ("DELETE", re.compile(r"^/faults$"), clear_faults),
    ]
