"""/_sandbox/hubspot: the control API, so another process (demo, benchmark) can change the CRM and set faults."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from sandbox.admin_common import common_routes
from sandbox.http import Request, Response, json_response
from sandbox.hubspot_data import OBJECT_TYPES, CrmRecord
from sandbox.hubspot_state import HubspotState

Action = Callable[[Request, list[str]], Any]
_TYPES = "|".join(OBJECT_TYPES)


def _record(record: CrmRecord) -> dict[str, Any]:
    return {"id": str(record.id), "properties": dict(record.properties), "archived": record.archived}


class HubspotAdmin:
    """Routes (method, regex) -> action returning JSON; ValueError/KeyError become 400/404."""

    def __init__(self, state: HubspotState) -> None:
        self.state = state
        obj = rf"/objects/({_TYPES})"
        self.routes: list[tuple[str, re.Pattern[str], Action]] = [
            *common_routes(self.state),
            ("POST", re.compile("^" + obj + "$"), self._create),
            ("PATCH", re.compile("^" + obj + r"/(\d+)$"), self._update),
            ("DELETE", re.compile("^" + obj + r"/(\d+)$"), self._archive),
            ("POST", re.compile("^" + obj + r"/merge$"), self._merge),
            ("POST", re.compile(r"^/tokens/expire$"), self._expire_tokens),
            ("POST", re.compile(r"^/users/([^/]+)/uninstall$"), self._uninstall),
        ]

    def __call__(self, req: Request) -> Response:
        for method, pattern, action in self.routes:
            found = pattern.match(req.path)
            if found and req.method == method:
                try:
                    with self.state.lock:
                        result = action(req, [urllib.parse.unquote(g) for g in found.groups()])
                except KeyError as exc:
                    return json_response({"error": f"not found: {exc}"}, 404)
                except (ValueError, TypeError) as exc:
                    return json_response({"error": str(exc)}, 400)
                return json_response(result)
        return json_response({"error": f"no sandbox control route {req.method} {req.path}"}, 404)

    def _create(self, req: Request, p: list[str]) -> Any:
        body = req.json()
        links = {str(k): [int(i) for i in v] for k, v in (body.get("associations") or {}).items()}
        return _record(self.state.store.create(p[0], body.get("properties") or {}, links))

    def _update(self, req: Request, p: list[str]) -> Any:
        return _record(self.state.store.update(p[0], int(p[1]), req.json().get("properties") or {}))

    def _archive(self, req: Request, p: list[str]) -> Any:
        return _record(self.state.store.archive(p[0], int(p[1])))

    def _merge(self, req: Request, p: list[str]) -> Any:
        body = req.json()
        return _record(self.state.store.merge(p[0], int(body["primaryObjectId"]), int(body["objectIdToMerge"])))

    def _expire_tokens(self, req: Request, p: list[str]) -> Any:
        return {"expired": self.state.auth.expire_access_tokens(req.json().get("user"))}

    def _uninstall(self, req: Request, p: list[str]) -> Any:
        return {"uninstalled": self.state.auth.uninstall(p[0])}
