"""konsol.pro's client for each process that calls it: the web app (over its shared session), and the worker
and the bot (each over one session of its own, opened on first use on the loop that uses it)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp

from billing.payouts import PayoutServices
from billing.payouts.cards import CardCipher
from billing.ports import PayoutQueue
from billing.providers.base import HttpTransport
from billing.providers.konsol import KonsolClient
from settings import Settings
from webhook_server.http_transport import AiohttpTransport


class OwnSessionTransport:
    """An HttpTransport with its own ClientSession, opened lazily (a session belongs to the loop that opens
    it, and the worker's loop runs only inside its jobs). Close it when the process stops."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    async def _transport(self) -> AiohttpTransport:
        async with self._lock:
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession(timeout=self._timeout)
            return AiohttpTransport(self._session)

    async def post_form(self, url: str, data: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, Any]:
        return await (await self._transport()).post_form(url, data, headers)

    async def request(self, method: str, url: str, *, json: Any = None, headers: Mapping[str, str] | None = None,
                      auth: tuple[str, str] | None = None) -> tuple[int, Any]:
        return await (await self._transport()).request(method, url, json=json, headers=headers, auth=auth)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def konsol_client(settings: Settings, transport: HttpTransport) -> KonsolClient | None:
    """None when payouts are off (no KONSOL_API_TOKEN)."""
    if settings.konsol_api_token is None:
        return None
    return KonsolClient(transport, base_url=settings.konsol_base_url,
                        token=settings.konsol_api_token.get_secret_value(), timeout=settings.konsol_timeout)


def payout_services(settings: Settings, queue: PayoutQueue,
                    transport: OwnSessionTransport | None = None) -> PayoutServices | None:
    """The worker's payout services (None when payouts are off); close their transport when it stops."""
    client = konsol_client(settings, transport or OwnSessionTransport(settings.konsol_timeout + 5))
    if client is None:
        return None
    return PayoutServices(konsol=client, cipher=CardCipher.from_link_key(settings.link_key), queue=queue)


async def close_payout_services(services: PayoutServices | None) -> None:
    if services is not None and isinstance(services.konsol.transport, OwnSessionTransport):
        await services.konsol.transport.close()
