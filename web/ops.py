"""The operators' surface: `/ops` (dashboard and actions), `/metrics`, and `GET /api/connections`.

`/ops` and `/metrics` need the admin key (`SXSYNC_ADMIN_KEY`): as `Authorization: Bearer`, or
through the login form, which sets an HttpOnly, SameSite=Lax cookie holding a signed session (never
the key itself). Action buttons POST a CSRF token derived from that cookie, so another site cannot
make an operator's browser act; a Bearer caller needs none (no ambient credential). A wrong key gets
401 and no data. Actions name the connection within its org: an unknown id, or another org's, is a 404.
"""

# No `from __future__ import annotations`: FastAPI resolves the closures' Annotated dependencies.

import hashlib
import hmac
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import dramatiq
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from models.network import org_by_slug
from models.orgs import org_of_stored_key
from models.rls import scoped as rls_scoped
from models.tables import Org
from sync import ops_actions
from sync.runtime import Runtime
from tokens import signed
from tokens.vault import signing_key
from web.metrics import CONTENT_TYPE_LATEST, TokenCounts, render_metrics
from web.ops_chart import Sample, Sampler, render_svg
from web.ops_report import SEVERITY, collect_ops, connection_views, load_streams
from web.queues import current_broker
from web.webhooks import ConnectionWatch, Notifier, webhook_config

OPS_COOKIE = "sxsync_ops"
SESSION_PURPOSE = "ops-session"
SESSION_TTL = 8 * 3600
REFRESH_SECONDS = 15
ACTIONS = ("pause", "resume", "resync", "retry", "requeue")
ACTOR = "ops:web"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def ops_router(rt: Runtime, broker: dramatiq.Broker | None = None) -> APIRouter:
    """The router over one runtime; `broker` defaults to the process's broker at request time."""
    router = APIRouter()
    secure = rt.settings.public_url.startswith("https://")
    sampler = Sampler(rt.writes, rt.sessions)
    tokens = TokenCounts()
    config = webhook_config(rt.settings)
    notifier = Notifier(config) if config is not None else None
    watch = ConnectionWatch(notifier) if notifier is not None else None

    def the_broker() -> dramatiq.Broker | None:
        return broker if broker is not None else current_broker()

    def admin_key() -> str:
        return str(rt.settings.admin_key or "")

    def fingerprint() -> str:
        return hashlib.sha256(admin_key().encode()).hexdigest()[:16]

    def session_key() -> bytes:
        return hmac.new(signing_key(rt.vault), b"ops-session:" + admin_key().encode(), hashlib.sha256).digest()

    def csrf_for(cookie: str) -> str:
        return hmac.new(session_key(), b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()[:40]

    def valid_cookie(cookie: str | None) -> bool:
        if not cookie or not admin_key():
            return False
        try:
            data = signed.verify(cookie, SESSION_PURPOSE, session_key())
        except signed.InvalidToken:
            return False
        return hmac.compare_digest(str(data.get("k", "")), fingerprint())

    def bearer_ok(authorization: str | None) -> bool | None:
        """True/False for a Bearer header (right/wrong key), None when there is none."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return bool(admin_key()) and hmac.compare_digest(key.strip().encode(), admin_key().encode())

    def who(request: Request, authorization: str | None) -> str | None:
        """'bearer', 'cookie', or None (not an operator)."""
        by_header = bearer_ok(authorization)
        if by_header is not None:
            return "bearer" if by_header else None
        return "cookie" if valid_cookie(request.cookies.get(OPS_COOKIE)) else None

    def login_page(request: Request, error: str | None, status: int = 401) -> HTMLResponse:
        response = templates.TemplateResponse(
            request,
            "ops_login.html",
            {"title": "Ops sign-in", "error": error, "enabled": bool(admin_key())},
            status_code=status,
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="sxsync-ops"'
        response.headers["Cache-Control"] = "no-store"
        return response

    def refuse(request: Request, authorization: str | None) -> Response:
        if bearer_ok(authorization) is False or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse(
                {"detail": "admin key required"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return login_page(request, None)

    def sample(at: datetime, records: int, pages: int, calls: int, failing: int, dead: int) -> None:
        if sampler.add(Sample(at, records, pages, calls, failing, dead)) and watch is not None:
            watch.observe(rt)  # at most once per sampling period

    @router.get("/ops", response_class=HTMLResponse)
    def dashboard(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        org: str | None = None,
        status: str | None = None,
        done: str | None = None,
        refresh: Annotated[int, Query(ge=0, le=3600)] = REFRESH_SECONDS,
    ) -> Response:
        if who(request, authorization) is None:
            return refuse(request, authorization)
        report = collect_ops(rt, the_broker(), org=org or None, status=status or None)
        if not org and not status:
            totals = report.totals
            sample(
                report.at,
                totals["records"],
                totals["pages"],
                totals["api_calls"],
                totals["failing_streams"],
                totals["dead_letters"],
            )
        cookie = request.cookies.get(OPS_COOKIE, "")
        every = max(5, refresh) if refresh else 0  # 0: no auto-refresh (?refresh=0)
        kept = (("org", org), ("status", status), ("refresh", str(refresh) if refresh != REFRESH_SECONDS else None))
        filters = urlencode({k: v for k, v in kept if v})
        response = templates.TemplateResponse(
            request,
            "ops.html",
            {
                "title": "Sync operations",
                "r": report,
                "chart": render_svg(sampler.points(), report.at),
                "csrf": csrf_for(cookie) if cookie else "",
                "flash": _flash(done),
                "org": org or "",
                "status": status or "",
                "refresh": every,
                "refresh_url": "/ops" + (f"?{filters}" if filters else ""),
                "words": list(SEVERITY),
                "ago": _ago,
                "when": _when,
            },
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.get("/ops/report.json")
    def report_json(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
        if who(request, authorization) is None:
            return refuse(request, authorization)
        return JSONResponse(collect_ops(rt, the_broker()).as_dict(), headers={"Cache-Control": "no-store"})

    @router.post("/ops/login")
    async def login(request: Request) -> Response:
        form = _form(await request.body())
        key = form.get("key", "")
        if not admin_key() or not hmac.compare_digest(key.encode(), admin_key().encode()):
            return login_page(request, "That is not the admin key." if admin_key() else None)
        token = signed.sign({"k": fingerprint()}, SESSION_PURPOSE, SESSION_TTL, session_key())
        response = RedirectResponse("/ops", status_code=303)
        response.set_cookie(
            OPS_COOKIE, token, max_age=SESSION_TTL, httponly=True, samesite="lax", secure=secure, path="/"
        )
        return response

    @router.post("/ops/logout")
    async def logout(request: Request) -> Response:
        form = _form(await request.body())
        cookie = request.cookies.get(OPS_COOKIE, "")
        if valid_cookie(cookie) and not hmac.compare_digest(form.get("csrf", ""), csrf_for(cookie)):
            raise HTTPException(403, "bad CSRF token")
        response = RedirectResponse("/ops", status_code=303)
        response.delete_cookie(OPS_COOKIE, path="/")
        return response

    @router.post("/ops/orgs/{org}/connections/{connection_id}/{action}")
    async def act(
        request: Request,
        org: str,
        connection_id: str,
        action: str,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        how = who(request, authorization)
        if how is None:
            return refuse(request, authorization)
        form = _form(await request.body())
        if how == "cookie" and not hmac.compare_digest(
            form.get("csrf", ""), csrf_for(request.cookies.get(OPS_COOKIE, ""))
        ):
            raise HTTPException(403, "bad CSRF token: reload the dashboard and try again")
        wants_json = how == "bearer" or "application/json" in request.headers.get("accept", "")
        if action not in ACTIONS:
            return _answer(wants_json, 404, f"unknown action {action[:40]!r}")
        if not connection_id.isdigit() or len(connection_id) > 18:
            return _answer(wants_json, 404, f"no connection {connection_id[:40]!r} in org {org[:100]!r}")
        stream = form.get("stream") or None
        try:
            result = _run(rt, the_broker(), notifier, action, int(connection_id), org, stream, form.get("handle"))
        except ops_actions.NotFound as exc:
            return _answer(wants_json, 404, str(exc))
        except ops_actions.NotAllowed as exc:
            return _answer(wants_json, 409, str(exc))
        if wants_json:
            return JSONResponse(
                {
                    "action": result.action,
                    "connection": result.connection_id,
                    "org": result.org,
                    "streams": result.streams,
                    "detail": result.detail,
                    "message": result.message(),
                }
            )
        done = f"{result.action}:{result.connection_id}:{result.detail.get('requeued', len(result.streams))}"
        return RedirectResponse("/ops?" + urlencode({"done": done}), status_code=303)

    @router.get("/metrics")
    def metrics(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
        if who(request, authorization) is None:
            return JSONResponse(
                {"detail": "admin key required"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        body, store, queues = render_metrics(rt, tokens, the_broker())
        sample(rt.clock(), store.records, store.pages, store.api_calls, store.failing, sum(q.dead for q in queues))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def db() -> Any:
        with rt.sessions() as session:
            yield session

    DB = Annotated[Session, Depends(db)]

    def org_caller(session: DB, authorization: Annotated[str | None, Header()] = None) -> str:
        """The org an API key speaks for (configured pairs, then stored keys); 401 otherwise."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
        found = None
        for known, slug in rt.settings.api_key_pairs().items():
            if hmac.compare_digest(known.encode(), key.encode()):
                found = slug
        if found is not None:
            return found
        stored = org_of_stored_key(session, key)
        if stored is None:
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
        return stored.slug

    @router.get("/api/connections")
    def api_connections(
        request: Request,
        session: DB,
        caller: Annotated[str, Depends(org_caller)],
        org_slug: Annotated[str, Query(alias="org")],
    ) -> dict[str, Any]:
        org_row: Org | None = org_by_slug(session, org_slug) if caller == org_slug else None
        if org_row is None:
            raise HTTPException(404, "no such org")
        rls_scoped(session, org_row.id)
        request.state.api_org = (org_row.id, org_row.slug)  # audited by the app's API middleware
        now = rt.clock()
        views = connection_views(load_streams(session, org_row.slug), now)
        return {
            "org": org_row.slug,
            "connections": [
                {
                    "id": v.id,
                    "member": v.member,
                    "provider": v.provider,
                    "source": v.source,
                    "account": v.account,
                    "status": v.connection_status,
                    "sync_status": v.status,
                    "needs_reauthorization": v.connection_status == "reauth_required",
                    "last_success_at": v.as_dict()["last_success_at"],
                    "lag_seconds": v.lag_seconds,
                    "records": v.records,
                    "last_error": v.last_error,
                }
                for v in sorted(views, key=lambda v: v.id)
            ],
        }

    return router


def _run(
    rt: Runtime,
    broker: dramatiq.Broker | None,
    notifier: Notifier | None,
    action: str,
    connection_id: int,
    org: str,
    stream: str | None,
    handle: str | None,
) -> ops_actions.ActionResult:
    """Dispatch one action by name."""
    notify = notifier.notify if notifier is not None else None
    if action == "pause":
        return ops_actions.pause_connection(rt, connection_id, actor=ACTOR, org=org, notify=notify)
    if action == "resume":
        return ops_actions.resume_connection(rt, connection_id, actor=ACTOR, org=org, notify=notify)
    if action == "resync":
        return ops_actions.resync_stream(rt, connection_id, stream, actor=ACTOR, org=org)
    if action == "retry":
        return ops_actions.retry_now(rt, connection_id, stream, actor=ACTOR, org=org)
    handles = [handle] if handle else None
    return ops_actions.requeue_dead_letters(rt, connection_id, actor=ACTOR, org=org, handles=handles, broker=broker)


def _answer(wants_json: bool, status: int, message: str) -> Response:
    """An action's refusal: JSON for API callers, a redirect with the reason for the browser."""
    if wants_json:
        return JSONResponse({"detail": message}, status_code=status)
    return HTMLResponse(
        f"<!doctype html><title>{status}</title><p>{escape(message)}</p><p><a href='/ops'>Back to the dashboard</a>",
        status_code=status,
    )


def _form(body: bytes) -> dict[str, str]:
    """An urlencoded form body (first value of each field)."""
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {k: v[0] for k, v in parsed.items()}


def _flash(done: str | None) -> str | None:
    """The line shown after an action, rebuilt from known words only (the query string is not echoed)."""
    if not done:
        return None
    parts = done.split(":")
    if len(parts) != 3 or parts[0] not in {"paused", "resumed", "resync", "retry", "requeued"}:
        return None
    if not parts[1].isdigit() or not parts[2].isdigit():
        return None
    connection, count = int(parts[1]), int(parts[2])
    return {
        "paused": f"Connection {connection} paused.",
        "resumed": f"Connection {connection} resumed: {count} stream(s) started.",
        "resync": f"Connection {connection}: full resync of {count} stream(s) started.",
        "retry": f"Connection {connection}: {count} stream(s) retried now.",
        "requeued": f"Connection {connection}: {count} dead letter(s) requeued.",
    }[parts[0]]


def _ago(seconds: float | None) -> str:
    """A duration as ops read it: 45s, 12m, 3h 5m, 2d 4h."""
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 90:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _when(value: str | None) -> str:
    """An ISO time shortened for a table cell."""
    if not value:
        return "never"
    return value.replace("T", " ").removesuffix("Z")
