"""What the emulators share: reading the invoice `ymds simulate` pays from a running server, and the
switches that make a saved method's charges decline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiohttp
from aiohttp import web

from settings import ConfigError, Settings

Outcome = TypeVar("Outcome")


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


@dataclass(slots=True)
class Declines(Generic[Outcome]):
    """How an emulator declines a saved method's next charges instead of succeeding: the next `times` of them,
    or every one while `times` is 0. Tests and `/control/...` routes set it; a charge takes from it."""

    _rules: dict[str, tuple[Outcome, int | None]] = field(default_factory=dict)

    def add(self, key: str, outcome: Outcome, times: int = 0) -> None:
        if times < 0:
            raise ValueError("times is a count of charges, 0 for all of them")
        self._rules[key] = (outcome, times or None)

    def clear(self, key: str) -> None:
        self._rules.pop(key, None)

    def take(self, key: str) -> Outcome | None:
        """The decline for this charge of `key`, if one is set; counts it."""
        rule = self._rules.get(key)
        if rule is None:
            return None
        outcome, left = rule
        if left == 1:
            del self._rules[key]
        elif left is not None:
            self._rules[key] = (outcome, left - 1)
        return outcome


async def control_body(request: web.Request) -> dict[str, Any] | None:
    """A control route's JSON object; None when the body is not one."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def times_of(body: Mapping[str, Any]) -> int | None:
    """A control body's `times` (absent or 0: always); None when it is not a count."""
    times = body.get("times", 0)
    return times if isinstance(times, int) and not isinstance(times, bool) and times >= 0 else None
