"""What the YooKassa tests share: the emulator as a local server, settings pointing at it, and helpers.

A test module opts in by importing the fixtures (`from tests.yookassa_support import settings,
yookassa_emulator, yookassa`): its `settings` replaces conftest's, so `client` and `worker` use them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from billing.money import Money
from billing.providers.yookassa import YooKassa
from billing.providers.yookassa.protocol import payment_request
from settings import Settings
from tests.conftest import YOOMONEY_API_TOKEN, FrozenClock, make_settings
from tests.helpers import notification as yoomoney_notification, post_notification as post_yoomoney
from webhook_server.emulators.yookassa import YooKassaEmulator
from webhook_server.emulators.yoomoney import YooMoneyEmulator
from webhook_server.keys import PROVIDERS

SHOP_ID = "123456"  # the reference's TV1 credentials
SECRET_KEY = "test_abc"
PRICE_MONTH_RUB = 29900


def yookassa_settings(api_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "yookassa_shop_id": SHOP_ID,
        "yookassa_secret_key": SECRET_KEY,
        "yookassa_api_url": api_url,
        "yookassa_notify_ips": "127.0.0.1",  # the test client's address stands in for YooKassa's
        "yookassa_test_mode": True,
        "yookassa_save_payment_method": True,
        **overrides,
    }


@pytest.fixture
async def yookassa_emulator() -> AsyncIterator[tuple[YooKassaEmulator, str]]:
    emulator = YooKassaEmulator(shop_id=SHOP_ID, secret_key=SECRET_KEY,
                                clock=FrozenClock(datetime.now(UTC).replace(microsecond=0)))  # YooKassa's own time
    server = TestServer(emulator.app())
    await server.start_server()
    emulator.checkout_base = str(server.make_url("")).rstrip("/")
    yield emulator, emulator.checkout_base
    await emulator.settle()
    await server.close()


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str],
             yookassa_emulator: tuple[YooKassaEmulator, str]) -> Settings:
    _, yoomoney_url = yoomoney_emulator
    _, yookassa_url = yookassa_emulator
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_url,
                         **yookassa_settings(yookassa_url + "/v3"))


@pytest.fixture
def yookassa(client: TestClient, yookassa_emulator: tuple[YooKassaEmulator, str]) -> YooKassaEmulator:
    """The emulator, notifying the app under test."""
    emulator, _ = yookassa_emulator
    emulator.notify_url = str(client.make_url("/notify/yookassa"))
    return emulator


def created_payment(emulator: YooKassaEmulator, label: str, minor: int = PRICE_MONTH_RUB, *,
                    currency: str = "RUB", capture: bool = True, save: bool = True) -> str:
    """A payment as our server would have created it, straight into the emulator; returns its id."""
    body = payment_request(amount=Money(minor, currency), return_url=f"http://shop.test/pay/{label}",
                           description=f"invoice {label}", label=label, save_method=save)
    return str(emulator.create({**body, "capture": capture})["id"])


def paid_payment(emulator: YooKassaEmulator, label: str, minor: int = PRICE_MONTH_RUB, **options: Any) -> str:
    payment_id = created_payment(emulator, label, minor, **options)
    emulator.succeed(payment_id)
    return payment_id


async def post_notification(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> int:
    response = await client.post("/notify/yookassa", json=body, headers=headers)
    await response.read()
    return response.status


def link_fields(pay_url: str) -> dict[str, str]:
    """The signed parameters of a payment link, as the page's YooKassa form carries them."""
    return dict(parse_qsl(urlsplit(pay_url).query))


async def press_pay(client: TestClient, invoice: dict[str, Any], **changes: str) -> tuple[int, str]:
    """The page's "Pay with YooKassa" button: our answer's status and where it sends the payer."""
    fields = {**link_fields(invoice["pay_url"]), **changes}
    response = await client.post(f"/pay/{invoice['label']}/yookassa", data=fields, allow_redirects=False)
    await response.read()
    return response.status, response.headers.get("Location", "")


def yookassa_clock(emulator: YooKassaEmulator) -> FrozenClock:
    """The emulator's own clock, which tests move to run YooKassa's redelivery schedule."""
    assert isinstance(emulator.clock, FrozenClock)
    return emulator.clock


def provider_of(client: TestClient) -> YooKassa:
    provider = client.app[PROVIDERS].get("yookassa")
    assert isinstance(provider, YooKassa)
    return provider


async def checkout(url: str, outcome: str = "pay") -> int:
    """The payer on YooKassa's confirmation page: pays (or declines); the status of YooKassa's answer."""
    async with aiohttp.ClientSession() as browser:
        async with browser.post(url, data={"outcome": outcome}, allow_redirects=False) as response:
            return response.status


async def paid_with_yoomoney(client: TestClient, label: str, minor: int = PRICE_MONTH_RUB) -> None:
    """Another provider pays the invoice: a signed YooMoney notification, recorded (no worker runs)."""
    assert await post_yoomoney(client, yoomoney_notification(label, minor)) == 200
