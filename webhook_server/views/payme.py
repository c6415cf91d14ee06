"""POST /notify/payme: Payme's Merchant API (JSON-RPC) adapted to the Payme provider module.

Any HTTP method reaches the provider, which answers a non-POST with Payme's own −32300 error; the
body limit of read_raw still turns an oversized body into 413 before anything is parsed.
"""

from __future__ import annotations

from aiohttp import web

from webhook_server.keys import CLOCK, LEDGER, PROVIDERS, QUEUES
from webhook_server.views.notify import read_raw, to_response

NAME = "payme"


async def notify_payme(request: web.Request) -> web.Response:
    provider = request.app[PROVIDERS].get(NAME)
    if provider is None:
        raise web.HTTPNotFound(reason=f"{NAME} is not enabled")
    raw = await read_raw(request)
    answer = await provider.handle(
        raw, http_method=request.method, ledger=request.app[LEDGER], reversals=request.app[QUEUES],
        clock=request.app[CLOCK],
    )
    return to_response(answer)
