"""/_sandbox/salesforce: the control API, so another process (demo, benchmark) can change records and set faults."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sandbox.admin_common import common_routes
from sandbox.http import Request, Response, json_response
from sandbox.salesforce_query import format_value
from sandbox.salesforce_schema import OBJECTS, canonical_object
from sandbox.salesforce_soql import parse_datetime
from sandbox.salesforce_state import SalesforceState

Action = Callable[[Request, list[str]], Any]


def _typed(sobject: str, fields: dict[str, Any]) -> dict[str, Any]:
    """JSON values turned into the field types (dateTime and date strings parsed)."""
    types = {k.lower(): v for k, v in OBJECTS[sobject].items()}
    out: dict[str, Any] = {}
    for name, value in fields.items():
        kind = types.get(name.lower())
        if isinstance(value, str) and kind == "datetime":
            out[name] = parse_datetime(value)
        elif isinstance(value, str) and kind == "date":
            out[name] = date.fromisoformat(value)
        else:
            out[name] = value
    return out


def _sobject(name: str) -> str:
    found = canonical_object(name)
    if found is None:
        raise KeyError(name)
    return found


class SalesforceAdmin:
    """Routes (method, regex) -> action returning JSON; ValueError/KeyError become 400/404."""

    def __init__(self, state: SalesforceState) -> None:
        self.state = state
        rec = r"/sobjects/([^/]+)"
        self.routes: list[tuple[str, re.Pattern[str], Action]] = [
            *common_routes(self.state),
            ("GET", re.compile(r"^/summary$"), lambda r, p: self.state.summary()),
            ("GET", re.compile("^" + rec + "$"), self._list),
            ("POST", re.compile("^" + rec + "$"), self._create),
            ("PATCH", re.compile("^" + rec + r"/([^/]+)$"), self._update),
            ("DELETE", re.compile("^" + rec + r"/([^/]+)$"), self._delete),
            ("POST", re.compile(r"^/merge$"), self._merge),
            ("POST", re.compile(r"^/recycle-bin/empty$"), lambda r, p: {"purged": self.state.empty_recycle_bin()}),
            ("POST", re.compile(r"^/locators/expire$"), lambda r, p: {"expired": self.state.expire_locators()}),
            ("POST", re.compile(r"^/clock/advance$"), self._advance),
            ("POST", re.compile(r"^/users/([^/]+)/expire-sessions$"), self._expire),
            ("POST", re.compile(r"^/users/([^/]+)/revoke$"), self._revoke),
        ]

    def __call__(self, req: Request) -> Response:
        for method, pattern, action in self.routes:
            m = pattern.match(req.path)
            if m and req.method == method:
                try:
                    result = action(req, [urllib.parse.unquote(g) for g in m.groups()])
                except KeyError as exc:
                    return json_response({"error": f"not found: {exc}"}, 404)
                except (ValueError, TypeError) as exc:
                    return json_response({"error": str(exc)}, 400)
                return json_response(result)
        return json_response({"error": f"no sandbox control route {req.method} {req.path}"}, 404)

    def _list(self, req: Request, p: list[str]) -> Any:
        return [{k: format_value(v) for k, v in r.items()} for r in self.state.live(_sobject(p[0]))]

    def _create(self, req: Request, p: list[str]) -> Any:
        sobject = _sobject(p[0])
        return {"id": self.state.create(sobject, _typed(sobject, req.json()))}

    def _update(self, req: Request, p: list[str]) -> Any:
        self.state.update(p[1], _typed(_sobject(p[0]), req.json()))
        return {}

    def _delete(self, req: Request, p: list[str]) -> Any:
        _sobject(p[0])
        self.state.delete(p[1])
        return {}

    def _merge(self, req: Request, p: list[str]) -> Any:
        body = req.json()
        self.state.merge(str(body["master"]), [str(x) for x in body["losers"]])
        return {}

    def _advance(self, req: Request, p: list[str]) -> Any:
        self.state.advance(**{k: float(v) for k, v in req.json().items()})
        now: datetime = self.state.now()
        return {"now": format_value(now)}

    def _expire(self, req: Request, p: list[str]) -> Any:
        return {"expired": self.state.auth.expire_sessions(self._user(p[0]))}

    def _revoke(self, req: Request, p: list[str]) -> Any:
        return {"revoked": self.state.auth.revoke_user(self._user(p[0]))}

    def _user(self, email_or_id: str) -> str:
        if email_or_id.startswith("005"):
            return email_or_id
        return self.state.users_by_email()[email_or_id.lower()]
