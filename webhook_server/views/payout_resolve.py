"""The admin API's resolutions of payout claims the machine cannot settle (billing/payouts/resolve.py):

POST /api/payouts/{label}/attach {"konsol_id": str}: konsol.pro's payment id for an `unknown` claim;
POST /api/payouts/{label}/fail {"confirm": true, "reason": str}: no payout exists at konsol.pro (or it was
cancelled there);
POST /api/payouts/{label}/resend {"confirm": true}: no payout exists at konsol.pro, send it again.
Every body may name the person deciding (`"admin": str`), recorded beside "admin API". Without
`"confirm": true` fail and resend answer 428 with the warning and change nothing.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from billing.payouts.claims import API_ADMIN_ID, MAX_REASON_LENGTH, ClaimNotFound
from billing.payouts.resolve import (
    MAX_ID_LENGTH,
    NOT_AT_KONSOL_WARNING,
    Resolved,
    Result,
    attach_payment_id,
    mark_failed,
    resend,
)
from webhook_server.http_transport import AiohttpTransport
from webhook_server.keys import CLOCK, HTTP, QUEUES, SETTINGS
from webhook_server.middlewares import json_error
from webhook_server.payout_services import konsol_client
from webhook_server.views.api import json_object
from webhook_server.views.payouts import API_ADMIN_NAME, claim_json

_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_LENGTH}}}")
_ANSWERS: dict[Result, tuple[int, str]] = {
    Result.DONE: (200, ""),
    Result.CHECKING: (202, ""),
    Result.WRONG_STATE: (409, "wrong_state"),
    Result.ID_TAKEN: (409, "id_taken"),
    Result.STILL_PAYABLE: (409, "still_payable"),
    Result.NOT_FOUND: (422, "konsol_payment_not_found"),
    Result.AMOUNT_MISMATCH: (422, "amount_mismatch"),
    Result.UNAVAILABLE: (503, "provider_unavailable"),
}


async def attach_view(request: web.Request) -> web.Response:
    body = await json_object(request)
    konsol_id = body.get("konsol_id")
    if not isinstance(konsol_id, str) or not _ID.fullmatch(konsol_id.strip()):
        return json_error(400, "bad_request", f"konsol_id must be konsol.pro's payment id (1 to {MAX_ID_LENGTH} "
                          "letters, digits, - or _)")
    client = konsol_client(request.app[SETTINGS], AiohttpTransport(request.app[HTTP]))
    if client is None:
        return json_error(404, "payouts_disabled", "KONSOL_API_TOKEN is not set")
    return await _answer(request, lambda label, by_name: attach_payment_id(
        label, konsol_id, by=API_ADMIN_ID, by_name=by_name, konsol=client, queue=request.app[QUEUES],
        clock=request.app[CLOCK]), body)


async def fail_view(request: web.Request) -> web.Response:
    body = await json_object(request, empty=b"{}")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        return json_error(400, "bad_request", f"reason must be a string of at most {MAX_REASON_LENGTH} characters")
    refused = _unconfirmed(body)
    client = konsol_client(request.app[SETTINGS], AiohttpTransport(request.app[HTTP]))
    if refused is not None or client is None:
        return refused or json_error(404, "payouts_disabled", "KONSOL_API_TOKEN is not set")
    return await _answer(request, lambda label, by_name: mark_failed(
        label, by=API_ADMIN_ID, by_name=by_name, reason=reason, konsol=client, queue=request.app[QUEUES],
        clock=request.app[CLOCK]), body)


async def resend_view(request: web.Request) -> web.Response:
    body = await json_object(request, empty=b"{}")
    refused = _unconfirmed(body)
    if refused is not None:
        return refused
    return await _answer(request, lambda label, by_name: resend(
        label, by=API_ADMIN_ID, by_name=by_name, queue=request.app[QUEUES], clock=request.app[CLOCK]), body)


def _unconfirmed(body: dict[str, Any]) -> web.Response | None:
    if body.get("confirm") is True:
        return None
    return json_error(428, "confirmation_required", f'{NOT_AT_KONSOL_WARNING} Send "confirm": true to go on.')


async def _answer(request: web.Request, decide: Any, body: dict[str, Any]) -> web.Response:
    admin = body.get("admin", "")
    if not isinstance(admin, str) or len(admin) > 48:
        return json_error(400, "bad_request", "admin must be a string of at most 48 characters")
    by_name = f"{API_ADMIN_NAME} ({admin.strip()})" if admin.strip() else API_ADMIN_NAME
    try:
        resolved: Resolved = await decide(request.match_info["label"], by_name)
    except ClaimNotFound:
        return json_error(404, "payout_not_found", "no payout claim with this label")
    status, code = _ANSWERS[resolved.result]
    if code:
        message = resolved.detail or f"the claim is {resolved.claim.status.value}"
        return web.json_response({"error": code, "message": message, "claim": claim_json(resolved.claim)},
                                 status=status)
    return web.json_response({**claim_json(resolved.claim), **({"detail": resolved.detail} if resolved.detail
                                                                 else {})}, status=status)
