"""Extra payments in the admin API: the list to refund by hand, and marking a manual refund done."""

from __future__ import annotations

from aiohttp import web

from billing.extras import extra_json, extras, mark_refunded_by_hand
from billing.ledger import find_operation
from webhook_server.keys import CLOCK
from webhook_server.middlewares import json_error


async def list_extras_view(request: web.Request) -> web.Response:
    """GET /api/extras[?refund=manual]: extra payments, newest first; `manual`: those still to refund by hand."""
    wanted = request.query.get("refund")
    if wanted not in (None, "manual"):
        return json_error(400, "bad_filter", "refund may only be 'manual'")
    found = await extras(manual_only=wanted == "manual")
    return web.json_response({"extras": [extra_json(operation) for operation in found]})


async def extra_refunded_view(request: web.Request) -> web.Response:
    """POST /api/extras/{provider}/{operation_id}/refunded: the owner refunded a manual extra by hand."""
    provider, operation_id = request.match_info["provider"], request.match_info["operation_id"]
    operation = await mark_refunded_by_hand(provider, operation_id, by="admin API", now=request.app[CLOCK]())
    if operation is not None:
        return web.json_response(extra_json(operation))
    existing = await find_operation(provider, operation_id)
    if existing is None:
        return json_error(404, "not_found", "no such operation")
    return json_error(409, "not_manual_extra", "this operation is not an extra payment waiting for a manual refund")
