"""`ymds simulate yookassa EVENT`: a payment made at a running YooKassa emulator (the demo's own, or the one
YOOKASSA_API_URL names), paid, declined or refunded there through its control routes, and the notification
YooKassa would send, posted to our server."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import aiohttp

from settings import ConfigError, Settings
from webhook_server.emulators.common import invoice_amount
from webhook_server.emulators.yookassa_wire import (
    PAYMENT_CANCELED,
    PAYMENT_SUCCEEDED,
    REFUND_SUCCEEDED,
    amount,
    basic_auth,
    minor_of,
    notification,
)

log = logging.getLogger(__name__)

MOUNT = "/emulator/yookassa"  # where `ymds demo` mounts the emulator (webhook_server/demo.py EMULATOR_ROOT + name)
EVENTS = ("payment", "canceled", "refund")


def emulator_base(settings: Settings, url: str) -> str:
    """The emulator the server at `url` talks to: the demo's own (mounted inside it), or YOOKASSA_API_URL's."""
    api = settings.yookassa_api_url.rstrip("/")
    return url.rstrip("/") + MOUNT if api.endswith(MOUNT + "/v3") else api.removesuffix("/v3")


async def simulate(
    settings: Settings, session: aiohttp.ClientSession, url: str, event: str, label: str, value: str | None
) -> int:
    """`ymds simulate yookassa EVENT`: a payment for the invoice at the emulator, paid (or declined, or paid and
    refunded) there, then its notifications sent from here as YooKassa sends them. Returns our server's answer
    (the first that was not 200)."""
    assert settings.yookassa_shop_id is not None and settings.yookassa_secret_key is not None
    minor = minor_of(value) if value else await invoice_amount(session, settings, url, label, "RUB")
    if minor is None:
        raise ConfigError(f"--amount {value!r} is not an amount such as 299.00")
    base = emulator_base(settings, url)
    headers = {"Authorization": basic_auth(settings.yookassa_shop_id, settings.yookassa_secret_key.get_secret_value()),
               "Idempotence-Key": str(uuid.uuid4())}
    body = {"amount": amount(minor, "RUB"), "capture": True,
            "confirmation": {"type": "redirect", "return_url": f"{url}/pay/{label}"},
            "description": f"ymds simulate {event}", "metadata": {"label": label},
            "save_payment_method": settings.yookassa_save_payment_method}
    async with session.post(f"{base}/v3/payments", json=body, headers=headers) as response:
        if response.status != 200:
            raise ConfigError(f"the YooKassa emulator at {base} answered HTTP {response.status}; `ymds simulate "
                              "yookassa` needs the emulator of `ymds demo` (or YOOKASSA_API_URL pointing at one)")
        payment = await response.json()
    changed = await _control(session, base, payment["id"], "decline" if event == "canceled" else "pay")
    status = await _notify(session, url, PAYMENT_CANCELED if event == "canceled" else PAYMENT_SUCCEEDED, changed)
    if event != "refund" or status != 200:
        return status
    return await _notify(session, url, REFUND_SUCCEEDED, await _control(session, base, payment["id"], "refund"))


async def _control(session: aiohttp.ClientSession, base: str, payment_id: str, outcome: str) -> dict[str, Any]:
    async with session.post(f"{base}/control/payments/{payment_id}", json={"outcome": outcome}) as response:
        if response.status != 200:
            raise ConfigError(f"the YooKassa emulator could not {outcome} payment {payment_id}: HTTP {response.status}")
        answer: dict[str, Any] = await response.json()
        return answer


async def _notify(session: aiohttp.ClientSession, url: str, event: str, obj: dict[str, Any]) -> int:
    async with session.post(f"{url}/notify/yookassa", json=notification(event, obj)) as response:
        await response.read()
        log.info("yookassa %s for %s: our server answered HTTP %s", event, obj.get("id"), response.status)
        return response.status
