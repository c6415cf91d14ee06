"""The YooKassa emulator's confirmation page: where the payer, sent by confirmation_url, pays or declines."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from aiohttp import web


def checkout_page(payment: Mapping[str, Any], card: Mapping[str, str]) -> web.Response:
    body = (
        "<!doctype html><meta charset='utf-8'><title>YooKassa emulator</title><h1>YooKassa emulator</h1>"
        f"<p>Pay {html.escape(payment['amount']['value'])} {html.escape(payment['amount']['currency'])}: "
        f"{html.escape(payment['description'])}</p><p>Test card {card['first6']}******{card['last4']}"
        "</p><form method='post'><button type='submit' name='outcome' value='pay' id='emulator-pay'>Pay</button> "
        "<button type='submit' name='outcome' value='decline' id='emulator-decline'>Decline</button></form>"
    )
    return web.Response(text=body, content_type="text/html")
