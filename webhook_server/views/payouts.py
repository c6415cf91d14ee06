"""The admin REST API for payouts (Bearer ADMIN_API_TOKEN, checked by admin_auth for every /api/ path).

GET /api/payouts (filters status, user_id, method; paging page, per_page), GET /api/payouts/{label},
POST /api/payouts/{label}/accept, POST /api/payouts/{label}/reject {"reason"}, GET /api/payouts/balance;
attach, fail and resend in webhook_server/views/payout_resolve.py.
A claim shows only its masked destination: never a card number, and the phone masked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from billing.payouts.claims import API_ADMIN_ID, ClaimNotFound, accept, destination, get_claim, list_claims, reject
from billing.providers.konsol import KonsolRejected, KonsolUnavailable, format_amount, mask_phone
from db.payouts import ClaimStatus, PayoutClaim, PayoutMethod
from webhook_server.http_transport import AiohttpTransport
from webhook_server.keys import CLOCK, HTTP, QUEUES, SETTINGS
from webhook_server.middlewares import json_error
from webhook_server.payout_services import konsol_client
from webhook_server.views.api import json_object

MAX_PER_PAGE = 200
API_ADMIN_NAME = "admin API"


def claim_json(claim: PayoutClaim) -> dict[str, Any]:
    return {
        "label": claim.label,
        "status": claim.status.value,
        "user_id": claim.user_id,
        "amount": claim.amount,
        "currency": claim.currency,
        "method": claim.method.value,
        "destination": destination(claim),
        "card_mask": claim.card_mask,
        "phone": mask_phone(claim.phone) if claim.phone else None,
        "bank_id": claim.bank_id,
        "bank_name": claim.bank_name,
        "created_at": _iso(claim.created_at),
        "filed_at": _iso(claim.filed_at),
        "decided_at": _iso(claim.decided_at),
        "decided_by": claim.decided_by_name,
        "reject_reason": claim.reject_reason,
        "konsol_id": claim.konsol_id,
        "konsol_status": claim.konsol_status,
        "submitted_at": _iso(claim.submitted_at),
        "settled_at": _iso(claim.settled_at),
        "failure_reason": claim.failure_reason,
        "unknown_since": _iso(claim.unknown_since),
        "candidate_id": claim.candidate_id,
        "rounds": claim.rounds,
        "decisions": [{"action": d.action.value, "by": d.by_name, "by_id": d.by, "at": _iso(d.at),
                       "konsol_id": d.konsol_id, "note": d.note} for d in claim.decisions],
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _int_query(request: web.Request, name: str, default: int, highest: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(highest))) or not 1 <= int(raw) <= highest:
        raise web.HTTPBadRequest(reason=f"{name} must be an integer from 1 to {highest}")
    return int(raw)


async def list_payouts_view(request: web.Request) -> web.Response:
    status, method, user = request.query.get("status"), request.query.get("method"), request.query.get("user_id")
    if status is not None and status not in {item.value for item in ClaimStatus}:
        return json_error(400, "bad_request", f"status must be one of {', '.join(item.value for item in ClaimStatus)}")
    if method is not None and method not in {item.value for item in PayoutMethod}:
        return json_error(400, "bad_request", "method must be card or fps")
    user_id = _int_query(request, "user_id", 0, 2**53) if user is not None else None
    page = _int_query(request, "page", 1, 10**6)
    per_page = _int_query(request, "per_page", 50, MAX_PER_PAGE)
    rows, total = await list_claims(status=ClaimStatus(status) if status else None, user_id=user_id,
                                    method=PayoutMethod(method) if method else None, page=page, per_page=per_page)
    return web.json_response({"items": [claim_json(claim) for claim in rows], "page": page, "per_page": per_page,
                              "total": total})


async def get_payout_view(request: web.Request) -> web.Response:
    claim = await _claim(request)
    if isinstance(claim, web.Response):
        return claim
    return web.json_response(claim_json(claim))


async def accept_payout_view(request: web.Request) -> web.Response:
    claim = await _claim(request)
    if isinstance(claim, web.Response):
        return claim
    decision = await accept(claim.label, by=API_ADMIN_ID, by_name=API_ADMIN_NAME, now=request.app[CLOCK](),
                            queue=request.app[QUEUES])
    if not decision.won and decision.claim.status is not ClaimStatus.ACCEPTED:
        return _already_decided(decision.claim)
    return web.json_response(claim_json(decision.claim), status=202)


async def reject_payout_view(request: web.Request) -> web.Response:
    claim = await _claim(request)
    if isinstance(claim, web.Response):
        return claim
    body = await json_object(request, empty=b"{}")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return json_error(400, "bad_request", "reason must be a non-empty string")
    decision = await reject(claim.label, by=API_ADMIN_ID, by_name=API_ADMIN_NAME, reason=reason,
                            now=request.app[CLOCK](), queue=request.app[QUEUES])
    if not decision.won:
        return _already_decided(decision.claim)
    return web.json_response(claim_json(decision.claim))


async def balance_view(request: web.Request) -> web.Response:
    client = konsol_client(request.app[SETTINGS], AiohttpTransport(request.app[HTTP]))
    if client is None:
        return json_error(404, "payouts_disabled", "KONSOL_API_TOKEN is not set")
    try:
        accounts = await client.balance()
    except KonsolRejected as err:
        return json_error(502, "provider_refused", str(err))
    except KonsolUnavailable:
        return json_error(503, "provider_unavailable", "konsol.pro did not answer; try again")
    return web.json_response({
        "accounts": [{"id": account.id, "balance": account.balance, "currency": account.currency,
                      "balance_text": format_amount(account.balance)} for account in accounts],
        "total": {currency: sum(a.balance for a in accounts if a.currency == currency)
                  for currency in sorted({a.currency for a in accounts})},
    })


async def _claim(request: web.Request) -> PayoutClaim | web.Response:
    try:
        return await get_claim(request.match_info["label"])
    except ClaimNotFound:
        return json_error(404, "payout_not_found", "no payout claim with this label")


def _already_decided(claim: PayoutClaim) -> web.Response:
    by = f" by {claim.decided_by_name}" if claim.decided_by_name else ""
    return json_error(409, "already_decided", f"the claim is {claim.status.value}{by}")
