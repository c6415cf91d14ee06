"""Dashboard actions beyond refunds: grant or extend a subscription, turn auto-renewal off, and the CSV exports.

Each action asks first (a GET renders the confirmation, only the POST acts), goes through the same domain
function as the bot and the admin API (billing.grants.grant, billing.renewals.cancel.set_auto_renew), and is
recorded in the audit with who did it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

from aiohttp import web

from billing import admin_access, exports
from billing.errors import UnknownPlan
from billing.grants import grant
from billing.plans import Plan
from billing.renewals.cancel import NoSubscription, set_auto_renew
from billing.subscriptions import get_subscription, renews_automatically
from db.admin import AdminSession
from webhook_server.admin.views import _now, _render, _texts, page
from webhook_server.keys import LEDGER, PLANS, QUEUES, SETTINGS

NONCE = re.compile(r"[0-9a-f]{32}")
MAX_EXPORT_DAYS = 366


def _user_id(request: web.Request) -> int:
    text = request.match_info["user_id"]
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**53:
        raise web.HTTPNotFound(text="no such user id")
    return int(text)


def _plan(request: web.Request, name: str) -> Plan:
    try:
        return request.app[PLANS].get(name)
    except UnknownPlan:
        raise web.HTTPBadRequest(text="no such plan") from None


@page("grant")
async def grant_confirm(request: web.Request, session: AdminSession) -> web.Response:
    user_id, plan = _user_id(request), _plan(request, request.query.get("plan", ""))
    # The nonce names this one confirmation: a double submit of the form grants once (billing.grants keys on it).
    return _render(request, "grant.html", {"session": session, "user_id": user_id, "plan": plan,
                                           "nonce": secrets.token_hex(16)})


@page("grant")
async def grant_action(request: web.Request, session: AdminSession) -> web.Response:
    user_id = _user_id(request)
    form = await request.post()
    plan, nonce = _plan(request, str(form.get("plan", ""))), str(form.get("nonce", ""))
    if not NONCE.fullmatch(nonce):
        raise web.HTTPBadRequest(text="the confirmation is malformed; open it again")
    result = await grant(request.app[LEDGER], plan, user_id, request_id=f"dashboard-{nonce}", now=_now(request),
                         ttl_seconds=request.app[SETTINGS].invoice_ttl_seconds)
    await admin_access.audit(session, "grant", f"user:{user_id}", "granted" if result.fresh else "repeated",
                             _now(request), reason=f"{plan.name} {result.label}")
    tx = _texts(request)
    message = tx["granted" if result.fresh else "grant_repeated"].format(plan=plan.name, days=plan.period_days)
    return _render(request, "message.html", {"message": message, "back": f"/admin/users/{user_id}"}, status=202)


def _not_renewing(request: web.Request, user_id: int) -> web.Response:
    return _render(request, "message.html", {"message": _texts(request)["not_renewing"],
                                             "back": f"/admin/users/{user_id}"}, status=409)


@page("auto_renew")
async def auto_renew_confirm(request: web.Request, session: AdminSession) -> web.Response:
    user_id = _user_id(request)
    subscription = await get_subscription(user_id)
    if subscription is None or not renews_automatically(subscription):
        return _not_renewing(request, user_id)
    return _render(request, "auto_renew.html", {"session": session, "user_id": user_id, "s": subscription})


@page("auto_renew")
async def auto_renew_off(request: web.Request, session: AdminSession) -> web.Response:
    user_id, tx = _user_id(request), _texts(request)
    subscription = await get_subscription(user_id)
    if subscription is None or not renews_automatically(subscription):
        return _not_renewing(request, user_id)
    try:
        await set_auto_renew(user_id, False, queue=request.app[QUEUES], now=_now(request))
    except NoSubscription:
        raise web.HTTPNotFound(text="no such subscription") from None
    await admin_access.audit(session, "auto_renew_off", f"user:{user_id}", "turned_off", _now(request))
    return _render(request, "message.html", {"message": tx["auto_renew_off"], "back": f"/admin/users/{user_id}"})


def _period(request: web.Request) -> tuple[datetime, datetime]:
    """?from=YYYY-MM-DD&to=YYYY-MM-DD, both days included, in UTC; at most a year."""
    try:
        first = datetime.fromisoformat(request.query["from"]).date()
        last = datetime.fromisoformat(request.query["to"]).date()
    except (KeyError, ValueError):
        raise web.HTTPBadRequest(text="give from=YYYY-MM-DD&to=YYYY-MM-DD") from None
    if last < first or (last - first).days >= MAX_EXPORT_DAYS:
        raise web.HTTPBadRequest(text=f"the period must run forward and span at most {MAX_EXPORT_DAYS} days")
    return (datetime.combine(first, time(), UTC), datetime.combine(last + timedelta(days=1), time(), UTC))


async def _stream_csv(request: web.Request, filename: str, lines: AsyncIterator[str]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
                                           "Content-Disposition": f'attachment; filename="{filename}"'})
    await response.prepare(request)
    await response.write("\ufeff".encode())  # the BOM spreadsheet programs need to read UTF-8
    async for line in lines:
        await response.write(line.encode())
    await response.write_eof()
    return response


@page("export")
async def exports_page(request: web.Request, session: AdminSession) -> web.Response:
    today = _now(request).date()
    return _render(request, "exports.html", {"session": session, "first": today.replace(day=1), "last": today})


@page("export")
async def export_payments(request: web.Request, session: AdminSession) -> web.StreamResponse:
    since, until = _period(request)
    await admin_access.audit(session, "export", "payments", "exported", _now(request),
                             reason=f"{since.date()}..{(until - timedelta(days=1)).date()}")
    name = f"payments-{since.date()}-{(until - timedelta(days=1)).date()}.csv"
    return await _stream_csv(request, name, exports.payment_lines(since, until))


@page("export")
async def export_subscribers(request: web.Request, session: AdminSession) -> web.StreamResponse:
    """Every subscription, or with ?from=&to= those with access at some time in those days."""
    if "from" not in request.query and "to" not in request.query:
        await admin_access.audit(session, "export", "subscribers", "exported", _now(request))
        return await _stream_csv(request, f"subscribers-{_now(request).date()}.csv", exports.subscriber_lines())
    since, until = _period(request)
    last = (until - timedelta(days=1)).date()
    await admin_access.audit(session, "export", "subscribers", "exported", _now(request),
                             reason=f"{since.date()}..{last}")
    return await _stream_csv(request, f"subscribers-{since.date()}-{last}.csv",
                             exports.subscriber_lines(since, until))
