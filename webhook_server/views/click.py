"""POST /notify/click/prepare and /notify/click/complete: adapt HTTP to the Click provider module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from billing.providers.click import NAME, Action
from webhook_server.keys import CLOCK, LEDGER
from webhook_server.metrics import NOTIFY_OUTCOME
from webhook_server.views.notify import enabled_provider, read_raw, to_response


def click_handler(route: Action) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        provider = enabled_provider(request, NAME)
        raw = await read_raw(request)  # 413 past the body limit, before anything is parsed
        answer, outcome = await provider.handle(route, raw, ledger=request.app[LEDGER], now=request.app[CLOCK]())
        request[NOTIFY_OUTCOME] = outcome
        return to_response(answer)

    return handle
