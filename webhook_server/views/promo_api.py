"""Admin API for promo and gift codes: create, list, and one code with its redemptions (Bearer auth: api.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from billing.promo import PromoExists, PromoInvalid, create_code, find_code, parse_definition, redemptions
from db.promo import PromoCode
from webhook_server.keys import CLOCK, PLANS
from webhook_server.middlewares import json_error
from webhook_server.views.api import json_object

MAX_LISTED = 500


def promo_json(promo: PromoCode) -> dict[str, Any]:
    return {
        "code": promo.code, "kind": promo.kind.value, "percent_off": promo.percent_off,
        "amounts_off": promo.amounts_off, "gift_plan": promo.gift_plan, "gift_days": promo.gift_days,
        "plans": promo.plans, "max_uses": promo.max_uses, "uses": promo.max_uses - promo.uses_left,
        "expires_at": promo.expires_at.isoformat() if promo.expires_at else None,
        "created_at": promo.created_at.isoformat(),
    }


async def create_promo_view(request: web.Request) -> web.Response:
    body = await json_object(request)
    try:
        definition = parse_definition(body, request.app[PLANS].names())
        promo = await create_code(definition, now=request.app[CLOCK]())
    except PromoInvalid as err:
        return json_error(400, "bad_request", str(err))
    except PromoExists:
        return json_error(409, "promo_code_exists", "a code with this name exists (codes are case-insensitive)")
    return web.json_response(promo_json(promo), status=201)


async def list_promo_view(request: web.Request) -> web.Response:
    codes = await PromoCode.find_all().sort("-created_at").limit(MAX_LISTED).to_list()
    return web.json_response({"promo_codes": [promo_json(promo) for promo in codes]})


async def get_promo_view(request: web.Request) -> web.Response:
    try:
        promo = await find_code(request.match_info["code"])
    except PromoInvalid as err:
        return json_error(400, "bad_request", str(err))
    if promo is None:
        return json_error(404, "promo_code_not_found", "no such code")
    used = await redemptions(promo.code)
    return web.json_response({**promo_json(promo), "redemptions": [
        {"user_id": redemption.user_id, "at": redemption.at.isoformat()} for redemption in used]})
