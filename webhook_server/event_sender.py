"""billing's EventSender over aiohttp, and the outlet each process installs when EVENTS_URL is set."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
from yarl import URL

from billing.events.outlet import EventOutlet
from billing.ports import EventNotSent, EventQueue
from settings import Settings


class AiohttpEventSender:
    """POSTs events over one ClientSession of its own, opened on first use on the loop that uses it (the worker's
    loop runs only inside its jobs). Redirects are not followed: the receiver answers at EVENTS_URL itself."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout_seconds = timeout_seconds
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    async def _open(self) -> aiohttp.ClientSession:
        async with self._lock:
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession()
            return self._session

    async def post_event(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        session = await self._open()
        timeout = self._timeout_seconds
        try:
            async with session.post(url, data=body, headers=dict(headers), allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                await response.read()
                return response.status
        except TimeoutError as err:
            raise EventNotSent(f"no answer from {_where(url)} within {timeout:g} s") from err
        except aiohttp.ClientError as err:
            raise EventNotSent(f"{type(err).__name__} calling {_where(url)}") from err

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _where(url: str) -> str:
    """Scheme, host and port only: the owner may have put a token into the path or the query."""
    parts = URL(url)
    return f"{parts.scheme}://{parts.host}:{parts.port}"


def event_outlet(settings: Settings, queue: EventQueue) -> EventOutlet | None:
    """None when EVENTS_URL is unset: nothing is recorded or sent."""
    if settings.events_url is None or settings.events_secret is None:
        return None
    return EventOutlet(url=settings.events_url, secret=settings.events_secret.get_secret_value(),
                       retry_intervals=tuple(settings.events_retry_intervals), queue=queue,
                       sender=AiohttpEventSender(settings.events_timeout_seconds))


async def close_outlet(outlet: EventOutlet | None) -> None:
    if outlet is not None and isinstance(outlet.sender, AiohttpEventSender):
        await outlet.sender.close()
