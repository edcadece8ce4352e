"""/_sandbox/microsoft: the control API, so another process (demo, benchmark) can mutate data and set faults."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from sandbox.http import Request, Response, json_response
from sandbox.microsoft_state import MicrosoftState

Action = Callable[[Request, list[str]], Any]


def _ok(effect: Callable[[], object]) -> dict[str, Any]:
    """Run a mutation that returns nothing; answer {"ok": true}."""
    effect()
    return {"ok": True}


class MicrosoftAdmin:
    """Routes (method, regex) -> action returning JSON; ValueError/KeyError become 400/404."""

    def __init__(self, state: MicrosoftState) -> None:
        self.state = state
        user = r"/users/([^/]+)"
        s = state
        self.routes: list[tuple[str, re.Pattern[str], Action]] = [
            ("GET", re.compile(r"^/stats$"), lambda r, p: s.stats.snapshot()),
            ("POST", re.compile(r"^/stats/reset$"), lambda r, p: _ok(s.stats.reset)),
            ("GET", re.compile(r"^/config$"), lambda r, p: s.knobs()),
            ("POST", re.compile(r"^/config$"), lambda r, p: _ok(lambda: s.configure(**r.json())) and s.knobs()),
            ("GET", re.compile(r"^/faults$"), lambda r, p: s.faults.snapshot()),
            (
                "POST",
                re.compile(r"^/faults$"),
                lambda r, p: _ok(lambda: s.faults.configure(r.json())) and s.faults.snapshot(),
            ),
            ("DELETE", re.compile(r"^/faults$"), lambda r, p: _ok(s.faults.clear)),
            ("POST", re.compile(r"^/sync-states/forget$"), lambda r, p: _ok(s.forget_sync_states)),
            ("POST", re.compile(r"^/tokens/expire$"), lambda r, p: _ok(s.identity.expire_access_tokens)),
            (
                "POST",
                re.compile("^" + user + r"/messages/(inbox|sentitems)$"),
                lambda r, p: {"id": s.add_message(p[0], p[1], r.json())},
            ),
            (
                "DELETE",
                re.compile("^" + user + r"/messages/(inbox|sentitems)/([^/]+)$"),
                lambda r, p: {"deleted": s.delete_message(p[0], p[1], p[2])},
            ),
            ("POST", re.compile("^" + user + r"/events$"), lambda r, p: {"id": s.put_event(p[0], r.json())}),
            (
                "POST",
                re.compile("^" + user + r"/events/([^/]+)/cancel$"),
                lambda r, p: {"cancelled": s.cancel_event(p[0], p[1])},
            ),
            ("DELETE", re.compile("^" + user + r"/events/([^/]+)$"), lambda r, p: {"deleted": s.delete_event(*p)}),
            ("POST", re.compile("^" + user + r"/contacts$"), lambda r, p: {"id": s.put_contact(p[0], r.json())}),
            ("DELETE", re.compile("^" + user + r"/contacts/([^/]+)$"), lambda r, p: {"deleted": s.delete_contact(*p)}),
            (
                "POST",
                re.compile("^" + user + r"/reset-sync-state$"),
                lambda r, p: _ok(lambda: s.reset_sync_state(p[0])),
            ),
            ("POST", re.compile("^" + user + r"/revoke$"), lambda r, p: {"revoked": s.identity.revoke_user(p[0])}),
        ]

    def __call__(self, req: Request) -> Response:
        for method, pattern, action in self.routes:
            match = pattern.match(req.path)
            if match and req.method == method:
                try:
                    result = action(req, [urllib.parse.unquote(g) for g in match.groups()])
                except KeyError as exc:
                    return json_response({"error": f"not found: {exc}"}, 404)
                except (ValueError, TypeError) as exc:
                    return json_response({"error": str(exc)}, 400)
                return json_response(result)
        return json_response({"error": f"no sandbox control route {req.method} {req.path}"}, 404)
