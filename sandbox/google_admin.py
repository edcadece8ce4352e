"""/_sandbox/google: the control API, so another process (demo, benchmark) can mutate mail and set faults."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from sandbox.admin_common import common_routes
from sandbox.gcal_admin import calendar_routes
from sandbox.google_state import GoogleState
from sandbox.http import Request, Response, json_response
from sandbox.people_admin import people_routes
from sandbox.world import MailMessage

Action = Callable[[Request, list[str]], Any]


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


class GoogleAdmin:
    """Routes (method, regex) -> action returning JSON; ValueError/KeyError become 400/404."""

    def __init__(self, state: GoogleState) -> None:
        self.state = state
        mb = r"/mailboxes/([^/]+)"
        msg = mb + r"/messages/([^/]+)"
        self.routes: list[tuple[str, re.Pattern[str], Action]] = [
            *common_routes(self.state),
            ("GET", re.compile(r"^/mailboxes$"), lambda r, p: self.state.mailbox_summary()),
            ("POST", re.compile(r"^/deliver$"), self._deliver),
            ("POST", re.compile(r"^/history/expire$"), self._expire_history),
            ("POST", re.compile("^" + mb + r"/messages$"), self._add_message),
            ("DELETE", re.compile("^" + msg + "$"), self._delete),
            ("POST", re.compile("^" + msg + r"/trash$"), self._trash),
            ("POST", re.compile("^" + msg + r"/modify$"), self._modify),
            ("POST", re.compile("^" + mb + r"/revoke$"), self._revoke),
            ("POST", re.compile("^" + mb + r"/expire-tokens$"), self._expire_tokens),
            *calendar_routes(state),
            *people_routes(state),
        ]

    def __call__(self, req: Request) -> Response:
        for method, pattern, action in self.routes:
            m = pattern.match(req.path)
            if m and req.method == method:
                try:
                    result = action(req, [urllib.parse.unquote(g) for g in m.groups()])
                except KeyError as exc:
                    return _error(404, f"not found: {exc}")
                except (ValueError, TypeError) as exc:
                    return _error(400, str(exc))
                return json_response(result)
        return _error(404, f"no sandbox control route {req.method} {req.path}")

    def _deliver(self, req: Request, p: list[str]) -> Any:
        body = req.json()
        if "generate" in body:
            return {"delivered": self.state.deliver_generated(int(body["generate"]))}
        ids = self.state.deliver(
            sender=body["from"],
            to=body.get("to", []),
            cc=body.get("cc", []),
            bcc=body.get("bcc", []),
            subject=body.get("subject", "Hello"),
            snippet=body.get("snippet", ""),
            date=body.get("date", "now"),
            message_id=body.get("messageId"),
            in_reply_to=body.get("inReplyTo"),
            extra_headers=[(str(k), str(v)) for k, v in body.get("headers", [])],
        )
        return {"ids": ids}

    def _expire_history(self, req: Request, p: list[str]) -> Any:
        self.state.expire_history(req.json().get("mailbox"))
        return self.state.mailbox_summary()

    def _add_message(self, req: Request, p: list[str]) -> Any:
        body = req.json()
        msg = MailMessage(
            id=str(body.get("id", "")),
            thread_id=str(body.get("threadId", "")),
            label_ids=tuple(body.get("labelIds", ["INBOX"])),
            internal_date_ms=int(body.get("internalDate", int(self.state.clock() * 1000))),
            headers=tuple((str(k), str(v)) for k, v in body.get("headers", [])),
            size_estimate=int(body.get("sizeEstimate", 2048)),
            snippet=str(body.get("snippet", "")),
        )
        return {"id": self.state.add_message(p[0], msg)}

    def _delete(self, req: Request, p: list[str]) -> Any:
        if not self.state.delete_message(p[0], p[1]):
            raise KeyError(p[1])
        return {}

    def _trash(self, req: Request, p: list[str]) -> Any:
        if not self.state.trash_message(p[0], p[1]):
            raise KeyError(p[1])
        return {}

    def _modify(self, req: Request, p: list[str]) -> Any:
        body = req.json()
        entry = self.state.modify_labels(p[0], p[1], body.get("addLabelIds", []), body.get("removeLabelIds", []))
        if entry is None:
            raise KeyError(p[1])
        return {"id": entry.msg.id, "labelIds": list(entry.label_ids)}

    def _revoke(self, req: Request, p: list[str]) -> Any:
        return {"revoked": self.state.revoke_mailbox_tokens(p[0])}

    def _expire_tokens(self, req: Request, p: list[str]) -> Any:
        return {"expired": self.state.expire_access_tokens(p[0])}
