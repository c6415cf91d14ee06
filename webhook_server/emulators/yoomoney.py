"""A YooMoney emulator: the Quickpay form target, the payer's "Pay" step, HTTP notifications, and
the wallet API's operation-details, all in YooMoney's own formats."""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from billing.money import Money
from billing.providers.yoomoney import build_notification, card_net_amount, format_amount, parse_amount
from settings import Settings
from webhook_server.emulators.common import invoice_amount

log = logging.getLogger(__name__)


async def send_notification(session: aiohttp.ClientSession, url: str, fields: Mapping[str, str]) -> int:
    """POST a notification form as YooMoney does; returns the HTTP status our server answered."""
    async with session.post(url, data=dict(fields)) as response:
        await response.read()
        return response.status


@dataclass(slots=True)
class YooMoneyEmulator:
    secret: str
    notify_url: str
    api_token: str
    wallet: str
    operations: dict[str, dict[str, str]] = field(default_factory=dict)
    deliveries: list[int] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.post("/quickpay/confirm", self.confirm_page),
            web.post("/quickpay/pay", self.pay),
            web.post("/api/operation-details", self.operation_details),
        ])
        return app

    def record_payment(self, label: str, paid: Money) -> dict[str, str]:
        """A card payment as the wallet history records it; returns the notification to send."""
        operation_id = str(secrets.randbelow(10**17) + 10**17)
        fields = build_notification(self.secret, operation_id=operation_id, paid=paid, label=label,
                                    occurred_at=datetime.now(UTC))
        self.operations[operation_id] = {
            "operation_id": operation_id, "status": "success", "direction": "in", "type": "deposition",
            "amount": format_amount(card_net_amount(paid.minor)), "label": label, "datetime": fields["datetime"],
        }
        return fields

    async def confirm_page(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("receiver") != self.wallet:
            return web.Response(status=400, text="unknown receiver")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(str(value))}">'
            for name, value in form.items() if name in ("sum", "label", "successURL")
        )
        body = (
            "<!doctype html><meta charset='utf-8'><title>YooMoney emulator</title>"
            f"<h1>YooMoney emulator</h1><p>Pay {html.escape(str(form.get('sum')))} RUB to wallet "
            f"{html.escape(self.wallet)}</p><form method='post' action='pay'>{hidden}"
            "<button type='submit' id='emulator-pay'>Pay</button></form>"
        )
        return web.Response(text=body, content_type="text/html")

    async def pay(self, request: web.Request) -> web.Response:
        form = await request.post()
        paid = parse_amount(str(form.get("sum", "")), "sum")
        fields = self.record_payment(str(form.get("label", "")), paid)
        async with aiohttp.ClientSession() as session:
            status = await send_notification(session, self.notify_url, fields)
        self.deliveries.append(status)
        if status != 200:
            return web.Response(status=502, text=f"the shop answered the notification with HTTP {status}")
        raise web.HTTPSeeOther(str(form.get("successURL") or "/"))

    async def operation_details(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_token}":
            return web.json_response({"error": "invalid_token"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        form = await request.post()
        operation = self.operations.get(str(form.get("operation_id", "")))
        if operation is None:
            return web.json_response({"error": "illegal_param_operation_id"})
        return web.json_response(operation)


EVENTS = ("payment", "held", "test")


async def simulate(
    settings: Settings, session: aiohttp.ClientSession, url: str, event: str, label: str, amount: str | None
) -> int:
    """`ymds simulate yoomoney EVENT`: one correctly signed notification, as YooMoney would send it."""
    assert settings.yoomoney_notification_secret is not None
    paid = parse_amount(amount, "--amount") if amount else Money(
        await invoice_amount(session, settings, url, label, "RUB"), "RUB")
    fields = build_notification(
        settings.yoomoney_notification_secret.get_secret_value(),
        operation_id="test-notification" if event == "test" else str(secrets.randbelow(10**17) + 10**17),
        paid=paid, label=label, unaccepted=event == "held", test=event == "test",
    )
    return await send_notification(session, f"{url}/notify/yoomoney", fields)


def demo_values(base_url: str, emulator_url: str) -> dict[str, str]:
    return {
        "yoomoney_wallet": "4100118000000000",
        "yoomoney_notification_secret": "demo-yoomoney-secret",
        "yoomoney_api_token": "demo-yoomoney-api-token",
        "yoomoney_api_url": emulator_url,
        "yoomoney_quickpay_url": emulator_url + "/quickpay/confirm",
    }


def demo_app(settings: Settings, local_base: str) -> web.Application | None:
    if not (settings.yoomoney_wallet and settings.yoomoney_notification_secret and settings.yoomoney_api_token):
        return None
    return YooMoneyEmulator(
        secret=settings.yoomoney_notification_secret.get_secret_value(),
        notify_url=local_base + "/notify/yoomoney",
        api_token=settings.yoomoney_api_token.get_secret_value(),
        wallet=settings.yoomoney_wallet,
    ).app()
