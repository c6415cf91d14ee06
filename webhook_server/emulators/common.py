"""What every emulator's `ymds simulate` needs: reading the invoice it pays from a running server."""

from __future__ import annotations

from typing import Any

import aiohttp

from settings import ConfigError, Settings


async def fetch_invoice(session: aiohttp.ClientSession, settings: Settings, url: str, label: str) -> dict[str, Any]:
    """The invoice as the admin API shows it; ConfigError when the server cannot be asked."""
    token = settings.admin_api_token.get_secret_value() if settings.admin_api_token else ""
    async with session.get(f"{url}/api/invoices/{label}", headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status != 200:
            raise ConfigError(f"cannot read invoice {label} from {url} (HTTP {response.status}); pass --amount")
        body: dict[str, Any] = await response.json()
        return body


async def invoice_amount(
    session: aiohttp.ClientSession, settings: Settings, url: str, label: str, currency: str
) -> int:
    amounts = (await fetch_invoice(session, settings, url, label)).get("amounts", {})
    if currency not in amounts:
        raise ConfigError(f"invoice {label} has no {currency} price")
    return int(amounts[currency])
