"""billing's HttpTransport over the application's one aiohttp ClientSession."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from billing import bounded_json
from billing.providers.base import ProviderHTTPError


class AiohttpTransport:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def post_form(self, url: str, data: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, Any]:
        try:
            async with self._session.post(url, data=dict(data), headers=dict(headers)) as response:
                text = await response.text()
                return response.status, _json_or_none(text)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ProviderHTTPError(f"{type(err).__name__} calling {_where(url)}") from err


    async def request(
        self, method: str, url: str, *, json: Any = None, headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> tuple[int, Any]:
        basic = aiohttp.BasicAuth(*auth) if auth else None
        try:
            async with self._session.request(method, url, json=json, headers=dict(headers or {}),
                                             auth=basic) as response:
                return response.status, _json_or_none(await response.text())
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ProviderHTTPError(f"{type(err).__name__} calling {method} {_where(url)}") from err


def _where(url: str) -> str:
    """Scheme and host only: a path or query may carry a token (Telegram puts the bot token in the path)."""
    parts = URL(url)
    return f"{parts.scheme}://{parts.host}"


def _json_or_none(text: str) -> Any:
    try:
        return bounded_json.loads(text, number=float)  # a misbehaving provider cannot nest or size us out
    except ValueError:
        return None
