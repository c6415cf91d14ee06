"""Dashboard lists and object pages: invoices, renewals in dunning, payout claims, promo codes, failed jobs;
and the actions that belong to those pages (confirm a held payment, accept or reject a payout claim, requeue a
failed job), each through the same domain function as the admin API and the bot, confirmed and audited."""

from __future__ import annotations

import asyncio

from aiohttp import web

from billing import admin_access, dashboard_lists
from billing.dashboard import refundable
from billing.errors import LedgerUnavailable, ProviderUnavailable
from billing.holds import ConfirmUnsupported, NothingToConfirm, confirm_hold
from billing.payouts.claims import ClaimNotFound, accept, get_claim, reject
from billing.providers.base import ProviderRejected
from billing.providers.konsol import mask_phone
from db import InvoiceKind, InvoiceStatus
from db.admin import AdminSession
from db.payouts import ClaimStatus
from rq_access import failed_jobs, requeue_failed
from webhook_server.admin.views import _now, _render, _texts, cursor_time, page
from webhook_server.keys import LEDGER, PROVIDERS, QUEUES, REDIS

INVOICE_STATUSES = [status.value for status in InvoiceStatus]
INVOICE_KINDS = [kind.value for kind in InvoiceKind]
CLAIM_STATUSES = [status.value for status in ClaimStatus]
MAX_REASON = 500


async def confirmed(request: web.Request) -> None:
    """These actions ask on their own page: the form's "I confirm" box must be ticked (the browser will not send
    the form without it; a form sent some other way without it is refused and changes nothing)."""
    if (await request.post()).get("confirm") != "yes":
        raise web.HTTPBadRequest(text="tick the confirmation box and send the form again")


def choice(request: web.Request, name: str, allowed: list[str]) -> str | None:
    value = request.query.get(name) or None
    if value is not None and value not in allowed:
        raise web.HTTPBadRequest(text=f"{name} must be one of {', '.join(allowed)}")
    return value


@page()
async def invoices_list(request: web.Request, session: AdminSession) -> web.Response:
    status, kind = choice(request, "status", INVOICE_STATUSES), choice(request, "kind", INVOICE_KINDS)
    rows = await dashboard_lists.invoices_page(status=status, kind=kind, before=cursor_time(request, "before"))
    return _render(request, "invoices.html", {"session": session, "rows": rows, "status": status or "",
                                              "kind": kind or "", "statuses": INVOICE_STATUSES, "kinds": INVOICE_KINDS,
                                              "more": len(rows) == dashboard_lists.PAGE_SIZE})


@page()
async def invoice_page(request: web.Request, session: AdminSession) -> web.Response:
    history = await dashboard_lists.invoice_history(request.match_info["label"][:100])
    if history is None:
        raise web.HTTPNotFound(text="no such invoice")
    return _render(request, "invoice.html", {"session": session, "h": history, "audit": history.audit,
                                             "refundable": refundable(history.invoice)})


@page("confirm")
async def confirm_action(request: web.Request, session: AdminSession) -> web.Response:
    label, tx = request.match_info["label"][:100], _texts(request)
    back = f"/admin/invoices/{label}"
    await confirmed(request)
    try:
        await confirm_hold(label, providers=request.app[PROVIDERS].providers, ledger=request.app[LEDGER])
    except (NothingToConfirm, ConfirmUnsupported, ProviderRejected, ProviderUnavailable) as err:
        await admin_access.audit(session, "confirm", f"invoice:{label}", "refused", _now(request),
                                 reason=type(err).__name__)
        status = 503 if isinstance(err, ProviderUnavailable) else 409
        return _render(request, "message.html", {"message": f"{type(err).__name__}: {err}", "back": back},
                       status=status)
    except LedgerUnavailable:
        await admin_access.audit(session, "confirm", f"invoice:{label}", "confirmed_unrecorded", _now(request))
        return _render(request, "message.html", {"message": tx["confirmed_unrecorded"], "back": back}, status=202)
    await admin_access.audit(session, "confirm", f"invoice:{label}", "confirmed", _now(request))
    return _render(request, "message.html", {"message": tx["confirmed"], "back": back}, status=202)


@page()
async def dunning_list(request: web.Request, session: AdminSession) -> web.Response:
    rows = await dashboard_lists.dunning_page(after=cursor_time(request, "after"))
    return _render(request, "dunning.html", {"session": session, "rows": rows,
                                             "more": len(rows) == dashboard_lists.PAGE_SIZE})


@page()
async def payouts_list(request: web.Request, session: AdminSession) -> web.Response:
    status = choice(request, "status", CLAIM_STATUSES)
    rows = await dashboard_lists.payouts_page(status=status, before=cursor_time(request, "before"))
    return _render(request, "payouts.html", {"session": session, "rows": rows, "status": status or "",
                                             "statuses": CLAIM_STATUSES, "mask_phone": mask_phone,
                                             "more": len(rows) == dashboard_lists.PAGE_SIZE})


@page()
async def payout_page(request: web.Request, session: AdminSession) -> web.Response:
    try:
        claim = await get_claim(request.match_info["label"][:100])
    except ClaimNotFound:
        raise web.HTTPNotFound(text="no such payout claim") from None
    audit = await dashboard_lists.audit_of(f"payout:{claim.label}")
    return _render(request, "payout.html", {"session": session, "c": claim, "audit": audit, "mask_phone": mask_phone,
                                            "open": claim.status is ClaimStatus.NEW})


@page("payout")
async def payout_decide(request: web.Request, session: AdminSession) -> web.Response:
    label, tx = request.match_info["label"][:100], _texts(request)
    await confirmed(request)
    form = await request.post()
    decision, reason = str(form.get("decision", "")), str(form.get("reason", "")).strip()[:MAX_REASON]
    if decision not in ("accept", "reject") or (decision == "reject" and not reason):
        raise web.HTTPBadRequest(text="accept, or reject with a reason")
    name, now, queue = f"dashboard {session.user_id}", _now(request), request.app[QUEUES]
    try:
        if decision == "accept":
            result = await accept(label, by=session.user_id, by_name=name, now=now, queue=queue)
        else:
            result = await reject(label, by=session.user_id, by_name=name, reason=reason, now=now, queue=queue)
    except ClaimNotFound:
        raise web.HTTPNotFound(text="no such payout claim") from None
    outcome = f"{decision}ed" if result.won else "already_decided"
    await admin_access.audit(session, "payout", f"payout:{label}", outcome, now)
    message = tx["payout_" + decision] if result.won else tx["already_decided"].format(
        who=result.claim.decided_by_name or "", status=result.claim.status.value)
    return _render(request, "message.html", {"message": message, "back": f"/admin/payouts/{label}"},
                   status=202 if result.won else 409)


@page()
async def promo_list(request: web.Request, session: AdminSession) -> web.Response:
    rows = await dashboard_lists.promo_page(after=(request.query.get("after") or "")[:64] or None)
    return _render(request, "promo_codes.html", {"session": session, "rows": rows,
                                                 "more": len(rows) == dashboard_lists.PAGE_SIZE})


@page()
async def promo_code_page(request: web.Request, session: AdminSession) -> web.Response:
    history = await dashboard_lists.promo_history(request.match_info["code"][:64])
    if history is None:
        raise web.HTTPNotFound(text="no such promo code")
    return _render(request, "promo_code.html", {"session": session, "h": history})


@page()
async def jobs_list(request: web.Request, session: AdminSession) -> web.Response:
    jobs = await asyncio.to_thread(failed_jobs, request.app[REDIS])
    return _render(request, "jobs.html", {"session": session, "jobs": jobs})


@page("jobs")
async def jobs_requeue(request: web.Request, session: AdminSession) -> web.Response:
    await confirmed(request)
    form = await request.post()
    job_id = str(form.get("job", ""))[:200]
    if not job_id:
        raise web.HTTPBadRequest(text="name the job to requeue")
    requeued = await asyncio.to_thread(requeue_failed, request.app[REDIS], [job_id])
    await admin_access.audit(session, "requeue", f"job:{job_id}", "requeued" if requeued else "not_failed",
                             _now(request))
    tx = _texts(request)
    return _render(request, "message.html", {"message": tx["requeued" if requeued else "not_failed"],
                                             "back": "/admin/jobs"}, status=202 if requeued else 404)
