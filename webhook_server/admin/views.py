"""Dashboard handlers: parse, call billing/, render. Every page needs a session (else a redirect to the sign-in
page); every POST carries the session's CSRF token; every action is checked against the role and audited."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from billing import admin_access, dashboard
from billing.admin_access import Role, may, parse_roles
from billing.errors import ProviderUnavailable
from billing.invoices import InvoiceNotFound, get_invoice
from billing.providers.base import ProviderRejected
from billing.refund_invoice import NoRefundApi, NotPaid, refund_invoice
from billing.signing import secrets_equal
from billing.subscriptions import renews_automatically
from db.admin import AdminSession
from rq_access import failed_job_count
from webhook_server.admin import chart
from webhook_server.admin.texts import TEXTS, language
from webhook_server.client_ip import client_ip
from webhook_server.keys import CLOCK, PLANS, PROVIDERS, QUEUES, REDIS, SETTINGS, TRUSTED_PROXIES

COOKIE = "ymds_admin"
LOGIN_ATTEMPTS = 10  # per IP per minute


class LoginLimiter:
    """Sign-in attempts per client IP in a sliding minute, in this process (one web process per deployment)."""

    def __init__(self) -> None:
        self.attempts: dict[str, deque[float]] = defaultdict(deque)

    def too_many(self, ip: str) -> bool:
        window, now = self.attempts[ip], time.monotonic()
        while window and now - window[0] > 60:
            window.popleft()
        window.append(now)
        if len(self.attempts) > 10_000:  # bounded memory under a spray of addresses
            self.attempts = defaultdict(deque, {ip: window})
        return len(window) > LOGIN_ATTEMPTS


LIMITER = web.AppKey("admin_login_limiter", LoginLimiter)

Page = Callable[[web.Request, AdminSession], Awaitable[web.StreamResponse]]


def _now(request: web.Request) -> datetime:
    return request.app[CLOCK]()


def _texts(request: web.Request) -> dict[str, str]:
    return TEXTS[language(request.query.get("lang"), request.cookies.get("admin_lang"))]


def _render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    lang = language(request.query.get("lang"), request.cookies.get("admin_lang"))
    response = aiohttp_jinja2.render_template(f"admin/{template}", request,
                                              {"tx": TEXTS[lang], "lang": lang, **context}, status=status)
    if request.query.get("lang") == lang:
        response.set_cookie("admin_lang", lang, httponly=True, samesite="Strict", path="/admin")
    response.headers["Cache-Control"] = "no-store"
    return response


def cursor_time(request: web.Request, name: str) -> datetime | None:
    """A list's cursor (`before`, `after`): the last row's sort key as an ISO date-time; 400 when it is not one."""
    text = request.query.get(name)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an ISO date-time") from None


def _rate_limited(request: web.Request) -> bool:
    ip = client_ip(request.remote or "", request.headers.get("X-Forwarded-For"), request.app[TRUSTED_PROXIES])
    return request.app[LIMITER].too_many(ip)


def _role_of(request: web.Request, user_id: int) -> Role | None:
    settings = request.app[SETTINGS]
    return parse_roles(settings.admin_ids, settings.admin_roles).get(user_id)


async def _start_session(request: web.Request, user_id: int) -> web.StreamResponse:
    role = _role_of(request, user_id)
    if role is None:
        raise web.HTTPForbidden(text="not an admin")
    session_id = await admin_access.open_session(user_id, role, _now(request))
    response = web.Response(status=303, headers={"Location": "/admin"})
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="Strict", path="/admin",
                        secure=request.secure, max_age=int(admin_access.SESSION_TTL.total_seconds()))
    return response


def page(action: str = "view") -> Callable[[Page], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    def wrap(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session_id = request.cookies.get(COOKIE, "")
            session = await admin_access.find_session(session_id, _now(request)) if session_id else None
            if session is None:
                raise web.HTTPSeeOther("/admin/login")
            if _role_of(request, session.user_id) is None:  # removed from ADMIN_IDS since signing in
                await admin_access.close_session(session_id)
                raise web.HTTPSeeOther("/admin/login")
            if not may(session.role, action):
                return _render(request, "message.html", {"message": _texts(request)["forbidden"]}, status=403)
            if request.method == "POST":
                form = await request.post()
                given = str(form.get("csrf", ""))
                if not given.isascii() or not secrets_equal(session.csrf_token, given):
                    raise web.HTTPForbidden(text="CSRF token missing or wrong")
            return await handler(request, session)
        return guarded
    return wrap


async def login_page(request: web.Request) -> web.Response:
    return _render(request, "login.html", {})


async def link_page(request: web.Request) -> web.Response:
    """GET only shows a button: a link preview fetching the URL does not spend the one-time token."""
    return _render(request, "link.html", {"token": request.match_info["token"]})


async def redeem_link(request: web.Request) -> web.StreamResponse:
    if _rate_limited(request):
        return _render(request, "message.html", {"message": _texts(request)["too_many"]}, status=429)
    user_id = await admin_access.redeem_login_token(request.match_info["token"], _now(request))
    if user_id is None:
        return _render(request, "message.html", {"message": _texts(request)["expired_link"]}, status=410)
    return await _start_session(request, user_id)


async def widget_login(request: web.Request) -> web.StreamResponse:
    """The Telegram Login Widget's data-auth-url target: its query carries id, auth_date, hash and the rest."""
    if _rate_limited(request):
        return _render(request, "message.html", {"message": _texts(request)["too_many"]}, status=429)
    bot_token = request.app[SETTINGS].bot_token
    data = {key: value for key, value in request.query.items() if key != "lang"}
    user_id = admin_access.check_widget_login(data, bot_token.get_secret_value(), _now(request)) if bot_token else None
    if user_id is None:
        raise web.HTTPForbidden(text="the Telegram login data is not authentic or is outdated")
    return await _start_session(request, user_id)


@page()
async def logout(request: web.Request, session: AdminSession) -> web.StreamResponse:
    await admin_access.close_session(request.cookies.get(COOKIE, ""))
    response = web.Response(status=303, headers={"Location": "/admin/login"})
    response.del_cookie(COOKIE, path="/admin")
    return response


def _days(now: datetime, count: int) -> list[str]:
    return [(now - timedelta(days=back)).strftime("%Y-%m-%d") for back in range(count - 1, -1, -1)]


def _months(now: datetime, count: int) -> list[str]:
    months, year, month = [], now.year, now.month
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months[::-1]


@page()
async def overview_page(request: web.Request, session: AdminSession) -> web.Response:
    now = _now(request)
    figures = await dashboard.overview(now)
    failed_jobs = await asyncio.to_thread(failed_job_count, request.app[REDIS])
    return _render(request, "overview.html", {
        "session": session, "o": figures, "failed_jobs": failed_jobs,
        "daily": chart.charts(figures.daily, _days(now, figures.window_days)),
        "monthly": chart.charts(figures.monthly, _months(now, 12))})


@page()
async def payments_list(request: web.Request, session: AdminSession) -> web.Response:
    status = request.query.get("status") or None
    rows = await dashboard.payments_page(status=status, before=cursor_time(request, "before"))
    return _render(request, "payments.html", {"session": session, "rows": rows, "status": status or "",
                                              "more": len(rows) == dashboard.PAGE_SIZE})


@page()
async def users_search(request: web.Request, session: AdminSession) -> web.StreamResponse:
    query = request.query.get("q", "")
    if query:
        user_id = await dashboard.find_user(query[:200])
        if user_id is not None:
            raise web.HTTPSeeOther(f"/admin/users/{user_id}")
    return _render(request, "users.html", {"session": session, "q": query, "missing": bool(query)},
                   status=404 if query else 200)


@page()
async def user_page(request: web.Request, session: AdminSession) -> web.Response:
    text = request.match_info["user_id"]
    if not text.isdigit() or not 0 < int(text) < 2**53:
        raise web.HTTPNotFound(text="no such user id")
    history = await dashboard.user_history(int(text))
    renewing = history.subscription is not None and renews_automatically(history.subscription)
    return _render(request, "user.html", {"session": session, "h": history, "refundable": dashboard.refundable,
                                          "renewing": renewing, "plans": list(request.app[PLANS])})


@page("refund")
async def refund_confirm(request: web.Request, session: AdminSession) -> web.Response:
    try:
        invoice = await get_invoice(request.match_info["label"])
    except InvoiceNotFound:
        raise web.HTTPNotFound(text="no such invoice") from None
    return _render(request, "refund.html", {"session": session, "invoice": invoice})


@page("refund")
async def refund_action(request: web.Request, session: AdminSession) -> web.Response:
    label = request.match_info["label"]
    tx = _texts(request)
    try:
        outcome = await refund_invoice(label, providers=request.app[PROVIDERS].providers, queues=request.app[QUEUES],
                                       reason=f"refunded from the dashboard by {session.user_id}")
    except InvoiceNotFound:
        raise web.HTTPNotFound(text="no such invoice") from None
    except (NotPaid, NoRefundApi, ProviderRejected, ProviderUnavailable) as err:
        await admin_access.audit(session, "refund", f"invoice:{label}", "refused", _now(request),
                                 reason=type(err).__name__)
        status = 503 if isinstance(err, ProviderUnavailable) else 409
        return _render(request, "message.html", {"message": f"{type(err).__name__}: {err}"}, status=status)
    result = "pending" if outcome.pending else "requested"
    await admin_access.audit(session, "refund", f"invoice:{label}", result, _now(request))
    message = tx["pending"] if outcome.pending else tx["refunded"]
    return _render(request, "message.html", {"message": message, "back": f"/admin/users/{outcome.invoice.user_id}"},
                   status=202)
