"""The HTTP app: consent pages, the OAuth callback, the org-scoped API and health."""

# No `from __future__ import annotations`: FastAPI resolves the closures' Annotated dependencies.

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from connectors.registry import CONNECTORS
from models.network import BadCursor, explain_contact, get_contact, intro_paths, org_by_slug, read_feed
from models.org_policy import PolicyChanges
from models.orgs import (
    AdminError,
    find_member,
    normalize_domain,
    normalize_member_email,
    org_of_stored_key,
    set_policy,
    upsert_member,
    upsert_org,
)
from models.rls import org_scope
from models.rls import scoped as rls_scoped
from models.tables import Connection, Member, Org
from privacy.audit import AuditQuery, BadQuery, parse_when, query_audit, record
from privacy.disconnect import disconnect_and_purge
from privacy.optout import NotAnIdentity, opt_out
from privacy.optout_link import LinkRefused, confirm_opt_out, request_opt_out
from sync.connections import activate, enabled_sources, scopes_of, sources_of
from sync.runtime import Runtime
from sync.scheduler import start_connections
from tokens import signed
from tokens.consent import ConsentError, begin_consent, complete_consent
from tokens.vault import signing_key
from web.ops import ops_router

log = logging.getLogger("sxsync.web")
CONSENT_COOKIE = "sxsync_consent"
SESSION_PURPOSE = "connect-session"
SESSION_TTL = 3600
INVALID_LINK = (400, "This link is not valid", "Ask for a new connect link; this one is expired or altered.")

PROVIDER_TEXT = {
    "google": ("Google", "Gmail message headers (sender, recipients, date)"),
    "microsoft": ("Microsoft 365", "Outlook mail headers, calendar attendees, contacts"),
    "salesforce": ("Salesforce", "contacts, leads, accounts, calls, logged emails and events"),
    "hubspot": ("HubSpot", "contacts, companies, calls, meetings and logged emails"),
}

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def connect_session(rt: Runtime, org: str, email: str, ttl: int = SESSION_TTL) -> str:
    """A signed, short-lived link token that lets one rep reach the consent page."""
    return signed.sign({"org": org, "email": email}, SESSION_PURPOSE, ttl, signing_key(rt.vault))


def connect_url(rt: Runtime, org: str, email: str) -> str:
    """The consent page URL for a rep."""
    return f"{rt.settings.public_url}/connect?session={connect_session(rt, org, email)}"


def redirect_uri(rt: Runtime, provider: str) -> str:
    """One redirect URI per provider (RFC 9700 mix-up defence)."""
    return f"{rt.settings.public_url}/oauth/callback/{provider}"


@dataclass(frozen=True)
class Caller:
    """Who an API key speaks for: an org name, and the org once it exists."""

    slug: str
    org: Org | None


class OrgBody(BaseModel):
    """`PUT /api/orgs/{org}`: its internal domains, and policy keys to change (the others keep their value)."""

    domains: list[str] = Field(min_length=1)
    policy: PolicyChanges | None = None


class MemberBody(BaseModel):
    """`PUT /api/orgs/{org}/members/{email}`."""

    ended_on: date | None = None


class OptOutBody(BaseModel):
    """`POST /api/opt-out`: an email address or a phone number."""

    identity: str = Field(min_length=3, max_length=320)


class ConnectSessionBody(BaseModel):
    """`POST /api/connect-sessions`."""

    org: str
    email: str


def create_app(rt: Runtime) -> FastAPI:
    """The app over one runtime (store, vault, settings)."""
    app = FastAPI(title="SalesX Activity Sync", docs_url=None, redoc_url=None)
    app.include_router(ops_router(rt))
    secure = rt.settings.public_url.startswith("https://")

    def db() -> Any:
        with rt.sessions() as session:
            yield session

    def db_write() -> Any:
        with rt.writes() as session:
            yield session

    DB = Annotated[Session, Depends(db)]
    WDB = Annotated[Session, Depends(db_write)]

    def api_caller(request: Request, session: DB, authorization: Annotated[str | None, Header()] = None) -> Caller:
        """The org the bearer key belongs to (remembered for the audit of the call); anything else is a 401."""
        caller = _api_caller(session, authorization)
        if caller.org is not None:
            request.state.api_org = (caller.org.id, caller.slug)
        return caller

    @app.middleware("http")
    async def audit_api_use(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Every answered call of the org-scoped API is a way out of the store: each one is audited."""
        response = await call_next(request)
        org = getattr(request.state, "api_org", None)
        if org is not None:
            await run_in_threadpool(audit_api_call, rt, org, request.method, request.url.path, response.status_code)
        return response

    def _api_caller(session: Session, authorization: str | None) -> Caller:
        """The org a bearer key speaks for: configured pairs first, then stored (hashed) keys."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
        org_slug = None
        for known, slug in rt.settings.api_key_pairs().items():
            if hmac.compare_digest(known.encode(), key.encode()):
                org_slug = slug
        if org_slug is not None:  # a configured key may name an org not created yet (PUT creates it)
            return Caller(org_slug, org_by_slug(session, org_slug))
        stored = org_of_stored_key(session, key)
        if stored is None:
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
        return Caller(stored.slug, stored)

    ApiCaller = Annotated[Caller, Depends(api_caller)]

    def scoped(caller: Caller, slug: str, session: Session) -> Org:
        """Another org's name answers 404, like a missing one (no existence oracle); the session sees only it."""
        if caller.slug != slug or caller.org is None:
            raise HTTPException(404, "no such org")
        rls_scoped(session, caller.org.id)
        return caller.org

    def page(request: Request, status: int, title: str, message: str, kind: str = "error") -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            "message.html",
            {"title": title, "message": message, "kind": kind, "retry": None},
            status_code=status,
        )

    @app.get("/healthz")
    def healthz(session: DB) -> dict[str, str]:
        session.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/connect", response_class=HTMLResponse)
    def connect_page(request: Request, session: DB, session_token: Annotated[str, Query(alias="session")]) -> Response:
        who = _session_or_none(rt, session_token)
        if who is None:
            return page(request, *INVALID_LINK)
        org, member = _org_member(session, who)
        if org is None or member is None:
            return page(request, 404, "Unknown member", "This link does not belong to a member of an organization.")
        mine = session.execute(select(Connection).where(Connection.member_id == member.id)).scalars().all()
        connected = {c.provider: c.account for c in mine if c.status != "revoked"}
        purge_due = {c.provider: c.purge_due_at for c in mine if c.status == "revoked" and c.purge_due_at}
        providers = [
            {
                "name": p,
                "title": PROVIDER_TEXT[p][0],
                "reads": PROVIDER_TEXT[p][1],
                "connected": connected.get(p),
                "purge_due": purge_due[p].strftime("%Y-%m-%d") if p in purge_due and p not in connected else None,
            }
            for p in PROVIDER_TEXT
            if sources_of(p, enabled_sources(org.policy))
        ]
        return templates.TemplateResponse(
            request,
            "connect.html",
            {
                "title": "Connect",
                "providers": providers,
                "session": session_token,
                "email": member.email,
                "org": org.slug,
            },
        )

    @app.post("/connect/{provider}/disconnect", response_class=HTMLResponse)
    async def disconnect_provider(request: Request, provider: str) -> Response:
        """The connect page's Disconnect button: the signed link (in the form, never a cookie) is the CSRF guard."""
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (fields.get("session") or [""])[0]
        status, title, message = await run_in_threadpool(disconnect_from_page, rt, token, provider)
        return page(request, status, title, message, kind="ok" if status == 200 else "error")

    @app.get("/connect/{provider}")
    def connect_provider(
        request: Request, provider: str, session: WDB, session_token: Annotated[str, Query(alias="session")]
    ) -> Response:
        if provider not in PROVIDER_TEXT or not sources_of(provider):
            return page(request, 404, "Unknown provider", f"{provider!r} is not a provider SalesX reads.")
        who = _session_or_none(rt, session_token)
        org, member = _org_member(session, who) if who else (None, None)
        if org is None or member is None:
            return page(request, *INVALID_LINK)
        if not sources_of(provider, enabled_sources(org.policy)):
            return page(request, 404, "Not enabled", "Your organization does not read this provider.")
        url = begin_consent(
            session,
            org_id=org.id,
            member_id=member.id,
            provider=provider,
            redirect_uri=redirect_uri(rt, provider),
            scopes=scopes_of(provider, enabled_sources(org.policy)),
            login_hint=member.email,
            vault=rt.vault,
            key=signing_key(rt.vault),
            client=rt.oauth_client(provider),
        )
        session.commit()
        state = parse_qs(urlsplit(url).query)["state"][0]
        response = RedirectResponse(url, status_code=302)
        response.set_cookie(
            CONSENT_COOKIE,
            _state_digest(state),
            max_age=600,
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/oauth/callback",
        )
        return response

    @app.get("/oauth/callback/{provider}", response_class=HTMLResponse)
    def oauth_callback(
        request: Request,
        provider: str,
        session: WDB,
        state: str = "",
        code: str = "",
        error: str = "",
    ) -> Response:
        if provider not in PROVIDER_TEXT:
            return page(request, 404, "Unknown provider", "This callback is not one SalesX uses.")
        if error:
            return page(
                request, 400, "Access was not granted", f"The provider answered: {error[:80]}. Nothing was connected."
            )
        cookie = request.cookies.get(CONSENT_COOKIE, "")
        if not state or not hmac.compare_digest(cookie, _state_digest(state)):
            return page(
                request,
                400,
                "This sign-in could not be verified",
                "The request did not come from the consent you started in this browser. Start again.",
            )
        try:
            result = complete_consent(
                session,
                provider=provider,
                state=state,
                code=code,
                redirect_uri=redirect_uri(rt, provider),
                vault=rt.vault,
                key=signing_key(rt.vault),
                client=rt.oauth_client(provider),
            )
            session.commit()
        except ConsentError as exc:
            session.commit()  # a replay or expiry must stay recorded as used
            return page(request, 400, "This sign-in could not be completed", _consent_message(exc))
        with org_scope(result.org_id):
            connections = activate(rt, result)
            if rt.settings.start_on_connect:
                try:  # the first page now: a rep who just connected should not wait for the scheduler's tick
                    start_connections(rt, [c.id for c in connections])
                except Exception:  # the broker is down: the scheduler starts them (or resends them) later
                    log.warning("could not start the new connections' first sync", exc_info=True)
        accounts = ", ".join(sorted({c.account for c in connections}))
        response = page(
            request,
            200,
            "Connected",
            f"{PROVIDER_TEXT[provider][0]} account {accounts} is connected. You can close this window.",
            kind="ok",
        )
        response.delete_cookie(CONSENT_COOKIE, path="/oauth/callback")
        return response

    @app.get("/opt-out", response_class=HTMLResponse)
    def opt_out_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "optout.html", {"title": "Opt out"})

    @app.post("/opt-out", response_class=HTMLResponse)
    async def opt_out_request(request: Request) -> Response:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        raw = (fields.get("identity") or [""])[0][:320]
        try:
            await run_in_threadpool(request_opt_out, rt, raw)
        except NotAnIdentity as exc:
            return page(request, 422, "That does not look right", f"{exc}. Go back and check what you typed.")
        return page(
            request,
            200,
            "Check your inbox",
            "If that address or number is yours, a confirmation link is on its way. It works once, for 24 hours.",
            kind="ok",
        )

    @app.get("/opt-out/confirm", response_class=HTMLResponse)
    def opt_out_confirm(request: Request, token: str = "") -> Response:
        try:
            confirm_opt_out(rt, token)
        except LinkRefused as exc:
            text = {
                "expired": "This link has expired (links work for 24 hours). Ask for a new one on the opt-out page.",
                "used": "This link was already used. If you asked to opt out, you are opted out.",
            }.get(exc.reason, "This link is not one we sent. Ask for a new one on the opt-out page.")
            return page(request, 400, "This link cannot be used", text)
        return page(
            request,
            200,
            "You are opted out",
            "SalesX has deleted what it held about you and will not collect it again.",
            kind="ok",
        )

    @app.post("/api/connect-sessions")
    def create_connect_session(body: ConnectSessionBody, caller: ApiCaller, session: DB) -> dict[str, str]:
        org = scoped(caller, body.org, session)
        member = _member_or_404(session, org, body.email)
        expires = datetime.now(UTC) + timedelta(seconds=SESSION_TTL)
        return {"url": connect_url(rt, org.slug, member.email), "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}

    @app.put("/api/orgs/{slug}")
    def put_org(slug: str, body: OrgBody, caller: ApiCaller, session: WDB) -> dict[str, Any]:
        if caller.slug != slug:
            raise HTTPException(404, "no such org")
        try:
            saved = upsert_org(session, slug, body.domains, actor=f"api:{slug}")
            if body.policy is not None:
                set_policy(session, saved, body.policy, actor=f"api:{slug}", known_sources=CONNECTORS)
        except AdminError as exc:
            raise HTTPException(422, str(exc)) from None
        session.commit()
        return {"org": saved.slug, "domains": saved.domains, "policy": saved.policy}

    @app.put("/api/orgs/{slug}/members/{email}")
    def put_member(slug: str, email: str, body: MemberBody, caller: ApiCaller, session: WDB) -> dict[str, Any]:
        org = scoped(caller, slug, session)
        try:
            member = upsert_member(session, org, email, actor=f"api:{slug}", ended_on=body.ended_on)
        except AdminError as exc:
            raise HTTPException(422, str(exc)) from None
        session.commit()
        return {
            "org": slug,
            "email": member.email,
            "ended_on": member.ended_on.isoformat() if member.ended_on else None,
        }

    @app.delete("/api/connections/{connection_id}")
    def delete_connection(connection_id: int, caller: ApiCaller) -> dict[str, Any]:
        if caller.org is None:
            raise HTTPException(404, "no such connection")
        done = disconnect_and_purge(rt, caller.org.id, connection_id, actor=f"api:{caller.slug}")
        if done is None:
            raise HTTPException(404, "no such connection")
        due = done.purge_due_at
        return {
            "id": done.connection.id,
            "status": done.connection.status,
            "erased": done.purged.copies_and_records,
            "purge_due_at": due.strftime("%Y-%m-%dT%H:%M:%SZ") if due else None,
        }

    @app.post("/api/opt-out")
    def api_opt_out(body: OptOutBody, caller: ApiCaller) -> dict[str, Any]:
        try:
            done = opt_out(rt, body.identity, actor=f"api:{caller.slug}")
        except NotAnIdentity as exc:
            raise HTTPException(422, str(exc)) from None
        return {"status": "opted_out", "reference": done.reference}

    @app.get("/api/audit")
    def audit_log(
        caller: ApiCaller,
        session: DB,
        org_slug: Annotated[str, Query(alias="org")],
        since: str | None = None,
        until: str | None = None,
        action: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        org = scoped(caller, org_slug, session)
        try:
            query = AuditQuery(org.id, parse_when(since), parse_when(until), action, limit)
            items, more = query_audit(session, query)
        except BadQuery as exc:
            raise HTTPException(422, str(exc)) from None
        return {"items": items, "has_more": more}

    @app.get("/api/network/contacts")
    def contacts_feed(
        caller: ApiCaller,
        session: DB,
        org_slug: Annotated[str, Query(alias="org")],
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        org = scoped(caller, org_slug, session)
        try:
            feed = read_feed(session, org.id, after, limit)
        except BadCursor as exc:
            raise HTTPException(400, str(exc)) from None
        return {"items": feed.items, "next": feed.next, "has_more": feed.has_more}

    @app.get("/api/network/contacts/{contact_id}")
    def contact(
        contact_id: str,
        caller: ApiCaller,
        session: DB,
        org_slug: Annotated[str, Query(alias="org")],
        explain: bool = False,
    ) -> Any:
        org = scoped(caller, org_slug, session)
        found = get_contact(session, org.id, int(contact_id)) if contact_id.isdigit() and len(contact_id) < 19 else None
        if found is None:
            return JSONResponse({"detail": "no such contact"}, status_code=404)
        return explain_contact(session, org, found) if explain else found

    @app.get("/api/network/intro-paths")
    def intro(
        caller: ApiCaller,
        session: DB,
        org_slug: Annotated[str, Query(alias="org")],
        email: str | None = None,
        domain: str | None = None,
    ) -> dict[str, Any]:
        org = scoped(caller, org_slug, session)
        if (email is None) == (domain is None):
            raise HTTPException(422, "give exactly one of email= or domain=")
        try:
            if email is not None:
                return intro_paths(session, org.id, email=normalize_member_email(email))
            return intro_paths(session, org.id, domain=normalize_domain(domain or ""))
        except AdminError as exc:
            raise HTTPException(422, str(exc)) from None

    return app


def disconnect_from_page(rt: Runtime, token: str, provider: str) -> tuple[int, str, str]:
    """Disconnect every connection of the link's rep at `provider`: (HTTP status, title, message) for the page."""
    who = _session_or_none(rt, token)
    if who is None or provider not in PROVIDER_TEXT:
        return INVALID_LINK
    with rt.sessions() as session:
        org, member = _org_member(session, who)
        if org is None or member is None:
            return INVALID_LINK
        org_id, keeps = org.id, not org.policy.get("purge_on_disconnect", True)
        ids = (
            session.execute(
                select(Connection.id).where(
                    Connection.member_id == member.id, Connection.provider == provider, Connection.status != "revoked"
                )
            )
            .scalars()
            .all()
        )
        actor = member.email
    title = PROVIDER_TEXT[provider][0]
    if not ids:
        return 404, "Not connected", f"No {title} account is connected."
    done = [d for d in (disconnect_and_purge(rt, org_id, i, actor=actor) for i in ids) if d is not None]
    due = max((d.purge_due_at for d in done if d.purge_due_at), default=None)
    if due is not None:
        what = f"Its data will be deleted on {due:%Y-%m-%d} unless you reconnect before then."
    elif keeps:
        what = "Your organization keeps the records already synced."
    else:
        what = f"The {sum(d.purged.copies_and_records for d in done)} records it brought were deleted."
    return 200, "Disconnected", f"{title} is disconnected and its access revoked. {what}"


def _session_or_none(rt: Runtime, token: str) -> dict[str, Any] | None:
    """The (org, email) a connect link was signed for, or None when forged or expired."""
    try:
        return signed.verify(token, SESSION_PURPOSE, signing_key(rt.vault))
    except signed.InvalidToken:
        return None


def _org_member(session: Session, who: dict[str, Any]) -> tuple[Org | None, Member | None]:
    """The org and member a connect link names (the session then sees that org only)."""
    org = org_by_slug(session, str(who.get("org")))
    if org is None:
        return None, None
    rls_scoped(session, org.id)
    return org, find_member(session, org, str(who.get("email")))


def audit_api_call(rt: Runtime, org: tuple[int, str], method: str, path: str, status: int) -> None:
    """One audit event per API call: who (the org's key), what (method and path, never the query string,
    which may hold an address), and the answer's status."""
    org_id, slug = org
    with org_scope(org_id), rt.writes.begin() as session:
        record(
            session,
            org_id=org_id,
            actor=f"api:{slug}",
            action="api.request",
            target=f"{method} {path}"[:200],
            status=status,
        )


def _member_or_404(session: Session, org: Org, email: str) -> Member:
    """A member of the caller's org, else 404."""
    try:
        member = find_member(session, org, email)
    except AdminError:
        member = None
    if member is None:
        raise HTTPException(404, "no such member")
    return member


def _state_digest(state: str) -> str:
    """The consent cookie binds the state to the browser that started the flow."""
    return hashlib.sha256(state.encode()).hexdigest()[:32]


def _consent_message(exc: ConsentError) -> str:
    """A plain sentence per refusal reason."""
    reason = getattr(exc, "reason", "")
    return {
        "bad_state": "The sign-in request was altered or is not ours. Start again from your connect link.",
        "expired_state": "The sign-in took too long (more than 10 minutes). Start again from your connect link.",
        "replayed_state": "This sign-in was already used. Start again from your connect link.",
        "provider_mismatch": "The answer came from a different provider than the one you chose. Start again.",
        "exchange_failed": "The provider did not accept the sign-in. Start again from your connect link.",
    }.get(reason, "The sign-in could not be completed. Start again from your connect link.")
