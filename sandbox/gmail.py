"""Gmail API v1 (getProfile, messages.list/get, history.list) shaped as the discovery document says."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sandbox import google_errors as errors
from sandbox.google_state import FULL_READ_SCOPES, SCOPE_METADATA, AccessToken, GoogleState
from sandbox.http import Request, Response, json_response
from sandbox.mailbox import HISTORY_TYPES, Entry, HistoryRecord, Mailbox
from sandbox.partial import FieldsError, apply_fields, parse_fields

_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^/gmail/v1/users/([^/]+)/profile$"), "profile"),
    (re.compile(r"^/gmail/v1/users/([^/]+)/messages$"), "list"),
    (re.compile(r"^/gmail/v1/users/([^/]+)/messages/([^/]+)$"), "get"),
    (re.compile(r"^/gmail/v1/users/([^/]+)/history$"), "history"),
)
FORMATS = ("minimal", "full", "raw", "metadata")
_PST = timezone(timedelta(hours=-8))
_Q_TERM = re.compile(r"^(after|before|newer_than|older_than|in|label|is):(\S+)$", re.IGNORECASE)


def match_gmail(path: str) -> tuple[str, list[str]] | None:
    """(endpoint kind, path params) for a Gmail path relative to the Google mount, or None."""
    for pattern, kind in _ROUTES:
        m = pattern.match(path)
        if m:
            return kind, [urllib.parse.unquote(g) for g in m.groups()]
    return None


def required_scope_ok(token: AccessToken) -> bool:
    return bool(token.scopes & (FULL_READ_SCOPES | {SCOPE_METADATA}))


def metadata_only(token: AccessToken, restricts_beside_full: bool) -> bool:
    """True when Gmail applies the metadata-scope restrictions to this token."""
    if SCOPE_METADATA not in token.scopes:
        return False
    return restricts_beside_full or not (token.scopes & FULL_READ_SCOPES)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


class GmailApi:
    """Answers one authorised Gmail operation; auth, quota, faults and counting happen in google_app."""

    def __init__(self, state: GoogleState) -> None:
        self.state = state
        self._secret = secrets.token_bytes(16)

    # -- page tokens -----------------------------------------------------------------------------
    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:16]
        return base64.urlsafe_b64encode(f"{payload}|{mac}".encode()).decode().rstrip("=")

    def _unsign(self, token: str, prefix: str) -> list[str] | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        payload, _, mac = raw.rpartition("|")
        good = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:16]
        if not hmac.compare_digest(mac, good):
            return None
        parts = payload.split("|")
        return parts[1:] if parts and parts[0] == prefix else None

    # -- dispatch --------------------------------------------------------------------------------
    def handle(self, kind: str, params: list[str], req: Request, token: AccessToken) -> Response:
        if req.method != "GET":
            return errors.api_error(405, "Method not allowed.", "methodNotAllowed")
        user = params[0]
        if user != "me" and user.lower() != token.mailbox:
            return errors.api_error(403, f"Delegation denied for {token.mailbox}", "forbidden")
        fields = req.arg("fields")
        mask = None
        if fields:
            try:
                mask = parse_fields(fields)
            except FieldsError as exc:
                return errors.bad_request(str(exc), "invalidParameter")
        with self.state.lock:
            box = self.state.mailboxes.get(token.mailbox)
            if box is None:
                return errors.api_error(400, "Mail service not enabled", "failedPrecondition")
            if kind == "profile":
                result: Any = {
                    "emailAddress": token.mailbox,
                    "messagesTotal": len(box.entries),
                    "threadsTotal": box.threads_total(),
                    "historyId": str(box.history_id),
                }
            elif kind == "list":
                result = self._list(req, token, box)
            elif kind == "get":
                result = self._get(req, token, box, params[1])
            else:
                result = self._history(req, box)
        if isinstance(result, Response):
            return result
        return json_response(apply_fields(result, mask) if mask is not None else result)

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _int_arg(req: Request, name: str, default: int) -> int | Response:
        raw = req.arg(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            return errors.bad_request(
                f"Invalid value '{raw}'. Values must match the following regular expression: '[0-9]+'",
                "invalidParameter",
            )
        if value < 0:
            return errors.bad_request(f"Invalid {name}", "invalidParameter")
        return value

    @staticmethod
    def _bool_arg(req: Request, name: str) -> bool | Response:
        raw = (req.arg(name) or "false").lower()
        if raw not in ("true", "false"):
            return errors.bad_request(f"Invalid value '{raw}' for boolean parameter {name}", "invalidParameter")
        return raw == "true"

    @staticmethod
    def _query_predicate(q: str, now_ms: int) -> Callable[[Entry], bool] | Response:
        """A small subset of Gmail search: after/before/newer_than/older_than/in/label/is."""
        lo, hi = -1, 2**63
        labels: list[str] = []
        for term in q.split():
            m = _Q_TERM.match(term)
            if m is None:
                return errors.bad_request(f"The sandbox does not support the search term {term!r}", "invalid")
            op, val = m.group(1).lower(), m.group(2)
            if op in ("after", "before"):
                try:
                    if val.isdigit():
                        ms = int(val) * 1000
                    else:
                        day = datetime.strptime(val.replace("-", "/"), "%Y/%m/%d").replace(tzinfo=_PST)
                        ms = int(day.timestamp() * 1000)
                except ValueError:
                    return errors.bad_request(f"Invalid date in {term!r}", "invalid")
                if op == "after":
                    lo = max(lo, ms)
                else:
                    hi = min(hi, ms)
            elif op in ("newer_than", "older_than"):
                unit = {"d": 1, "m": 30, "y": 365}.get(val[-1:].lower())
                if unit is None or not val[:-1].isdigit():
                    return errors.bad_request(f"Invalid period in {term!r}", "invalid")
                edge = now_ms - int(val[:-1]) * unit * 86_400_000
                if op == "newer_than":
                    lo = max(lo, edge - 1)
                else:
                    hi = min(hi, edge)
            elif op == "is":
                labels.append({"unread": "UNREAD", "starred": "STARRED"}.get(val.lower(), val.upper()))
            else:
                labels.append(val.upper())

        def predicate(entry: Entry) -> bool:
            return lo < entry.msg.internal_date_ms < hi and all(lab in entry.label_ids for lab in labels)

        return predicate

    # -- operations ------------------------------------------------------------------------------
    def _list(self, req: Request, token: AccessToken, box: Mailbox) -> dict[str, Any] | Response:
        max_results = self._int_arg(req, "maxResults", 100)
        if isinstance(max_results, Response):
            return max_results
        max_results = min(max_results or 100, 500)
        include = self._bool_arg(req, "includeSpamTrash")
        if isinstance(include, Response):
            return include
        labels = tuple(sorted(set(req.args("labelIds"))))
        q = (req.arg("q") or "").strip()
        predicate = None
        if q:
            if metadata_only(token, self.state.metadata_scope_restricts):
                return errors.api_error(403, "Metadata scope does not support 'q' parameter", "forbidden")
            pred = self._query_predicate(q, int(self.state.clock() * 1000))
            if isinstance(pred, Response):
                return pred
            predicate = pred
        filter_key = hashlib.sha256(f"{labels}|{include}|{q}".encode()).hexdigest()[:12]
        after = None
        page_token = req.arg("pageToken")
        if page_token:
            parts = self._unsign(page_token, "L")
            if parts is None or len(parts) != 4 or parts[0] != box.email or parts[1] != filter_key:
                return errors.bad_request("Invalid pageToken", "invalidArgument")
            after = (int(parts[2]), parts[3])
        entries, next_key = box.page(labels, include, after, max_results, predicate)
        body: dict[str, Any] = {}
        if entries:
            body["messages"] = [{"id": e.msg.id, "threadId": e.msg.thread_id} for e in entries]
        if next_key is not None:
            body["nextPageToken"] = self._sign(f"L|{box.email}|{filter_key}|{next_key[0]}|{next_key[1]}")
        body["resultSizeEstimate"] = box.count(labels, include, predicate, q)
        return body

    def _get(self, req: Request, token: AccessToken, box: Mailbox, message_id: str) -> dict[str, Any] | Response:
        fmt = (req.arg("format") or "full").lower()
        if fmt not in FORMATS:
            return errors.bad_request(f"Invalid value at 'format' ({req.arg('format')})", "invalidArgument")
        if fmt in ("full", "raw") and metadata_only(token, self.state.metadata_scope_restricts):
            return errors.api_error(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")
        entry = box.entries.get(message_id)
        if entry is None:
            return errors.not_found()
        return message_resource(entry, fmt, req.args("metadataHeaders"))

    def _history(self, req: Request, box: Mailbox) -> dict[str, Any] | Response:
        raw_start = req.arg("startHistoryId")
        if not raw_start:
            return errors.bad_request("Missing required parameter: startHistoryId", "required")
        if not raw_start.isdigit():
            return errors.bad_request(f"Invalid value '{raw_start}' for startHistoryId", "invalidParameter")
        start = int(raw_start)
        max_results = self._int_arg(req, "maxResults", 100)
        if isinstance(max_results, Response):
            return max_results
        max_results = min(max_results or 100, 500)
        types = req.args("historyTypes")
        for t in types:
            if t not in HISTORY_TYPES:
                return errors.bad_request(f"Invalid value at 'history_types' ({t})", "invalidArgument")
        label_id = req.arg("labelId")
        if not box.history_valid(start):
            return errors.not_found()
        filter_key = hashlib.sha256(f"{start}|{sorted(types)}|{label_id}".encode()).hexdigest()[:12]
        after = start
        page_token = req.arg("pageToken")
        if page_token:
            parts = self._unsign(page_token, "H")
            if parts is None or len(parts) != 3 or parts[0] != box.email or parts[1] != filter_key:
                return errors.bad_request("Invalid pageToken", "invalidArgument")
            after = int(parts[2])
            if not box.history_valid(after):
                return errors.not_found()
        records, more = box.history_after(after, types, label_id, max_results)
        body: dict[str, Any] = {}
        if records:
            body["history"] = [history_resource(r) for r in records]
        if more:
            body["nextPageToken"] = self._sign(f"H|{box.email}|{filter_key}|{records[-1].id}")
        body["historyId"] = str(box.history_id)
        return body


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def message_resource(entry: Entry, fmt: str, metadata_headers: list[str]) -> dict[str, Any]:
    """A Message in the requested format; header filter is case-insensitive and keeps original order."""
    m = entry.msg
    body: dict[str, Any] = {"id": m.id, "threadId": m.thread_id}
    if entry.label_ids:
        body["labelIds"] = list(entry.label_ids)
    body["snippet"] = m.snippet
    content_type = (m.header("Content-Type") or "text/plain").split(";", 1)[0].strip().lower()
    if fmt == "metadata":
        wanted = {h.lower() for h in metadata_headers}
        headers = [{"name": k, "value": v} for k, v in m.headers if not wanted or k.lower() in wanted]
        body["payload"] = {
            "partId": "",
            "mimeType": content_type,
            "filename": "",
            "headers": headers,
            "body": {"size": 0},
        }
    elif fmt == "full":
        text = m.snippet.encode("utf-8")
        html = f'<div dir="ltr">{m.snippet}</div>'.encode()
        body["payload"] = {
            "partId": "",
            "mimeType": content_type,
            "filename": "",
            "headers": [{"name": k, "value": v} for k, v in m.headers],
            "body": {"size": 0},
            "parts": [
                {
                    "partId": "0",
                    "mimeType": "text/plain",
                    "filename": "",
                    "headers": [{"name": "Content-Type", "value": 'text/plain; charset="UTF-8"'}],
                    "body": {"size": len(text), "data": _b64url(text)},
                },
                {
                    "partId": "1",
                    "mimeType": "text/html",
                    "filename": "",
                    "headers": [{"name": "Content-Type", "value": 'text/html; charset="UTF-8"'}],
                    "body": {"size": len(html), "data": _b64url(html)},
                },
            ],
        }
    body["sizeEstimate"] = m.size_estimate
    body["historyId"] = str(entry.history_id)
    body["internalDate"] = str(m.internal_date_ms)
    if fmt == "raw":
        raw = "".join(f"{k}: {v}\r\n" for k, v in m.headers) + "\r\n" + m.snippet + "\r\n"
        body["raw"] = _b64url(raw.encode("utf-8"))
    return body


def history_resource(rec: HistoryRecord) -> dict[str, Any]:
    """A History record with `messages` plus the one typed change list it carries."""
    ref = {"id": rec.message_id, "threadId": rec.thread_id}
    full = {**ref, "labelIds": list(rec.label_ids)} if rec.label_ids else dict(ref)
    out: dict[str, Any] = {"id": str(rec.id), "messages": [ref]}
    if rec.type == "messageAdded":
        out["messagesAdded"] = [{"message": full}]
    elif rec.type == "messageDeleted":
        out["messagesDeleted"] = [{"message": full}]
    elif rec.type == "labelAdded":
        out["labelsAdded"] = [{"message": full, "labelIds": list(rec.changed)}]
    else:
        out["labelsRemoved"] = [{"message": full, "labelIds": list(rec.changed)}]
    return out
