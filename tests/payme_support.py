"""Fixtures and helpers the Payme tests share: Payme enabled in the app, and the Payme emulator
pointed at the test server with the frozen clock as Payme's own time.

Import the fixtures by name into a test module (`from tests.payme_support import settings, payme`):
the module's `settings` then overrides conftest's, so `client` is built with Payme enabled.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from billing.providers.payme.protocol import to_ms
from db.payme import PaymeTransaction
from settings import Settings
from tests.conftest import YOOMONEY_API_TOKEN, FrozenClock, make_settings
from webhook_server.emulators.payme import PaymeEmulator, RpcResult, basic_auth
from webhook_server.emulators.yoomoney import YooMoneyEmulator

PAYME_MERCHANT = "5e730e8e0b852a417aa49ceb"  # also the merchant of the reference's worked vectors (payme.md §9)
# The reference's checkout vectors for invoice inv-42, 3 500 000 tiyin: plain, and with l=ru and a return URL.
INV_42 = "bT01ZTczMGU4ZTBiODUyYTQxN2FhNDljZWI7YWMub3JkZXJfaWQ9aW52LTQyO2E9MzUwMDAwMA=="
INV_42_WITH_RETURN = ("bT01ZTczMGU4ZTBiODUyYTQxN2FhNDljZWI7YWMub3JkZXJfaWQ9aW52LTQyO2E9MzUwMDAwMDtsPXJ1O2M9"
                      "aHR0cHM6Ly9leGFtcGxlLmNvbS9wYWlkL2ludi00Mg==")
PAYME_KEY = "TEST#KEY&with?odd%chars@and:colon"  # Payme keys hold such characters; never URL-decoded
PAYME_CHECKOUT = "http://payme.test/checkout"
PRICE_MONTH_UZS = 3500000
PRICE_YEAR_UZS = 35000000


def payme_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"payme_merchant_id": PAYME_MERCHANT, "payme_key": PAYME_KEY,
                              "payme_checkout_url": PAYME_CHECKOUT}
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str]) -> Settings:
    _, emulator_url = yoomoney_emulator
    return payme_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=emulator_url)


@pytest.fixture
def payme(client: TestClient, clock: FrozenClock) -> PaymeEmulator:
    return emulator_for(client, clock)


def emulator_for(client: TestClient, clock: FrozenClock, **options: Any) -> PaymeEmulator:
    return PaymeEmulator(merchant_id=PAYME_MERCHANT, key=PAYME_KEY, notify_url=str(client.make_url("/notify/payme")),
                         clock=lambda: to_ms(clock.now), **options)


async def rpc(client: TestClient, body: Any, *, key: str | None = PAYME_KEY, raw: bytes | None = None,
              headers: dict[str, str] | None = None, method: str = "POST") -> tuple[int, Any]:
    """A Merchant API request as bytes on the wire; returns (HTTP status, decoded JSON or text)."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        sent["Authorization"] = basic_auth(key)
    data = raw if raw is not None else json.dumps(body).encode()
    response = await client.request(method, "/notify/payme", data=data, headers=sent)
    text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def error_code(answer: RpcResult | Any) -> int | None:
    body = answer.body if isinstance(answer, RpcResult) else answer
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


async def transactions() -> list[PaymeTransaction]:
    return await PaymeTransaction.find_all().to_list()
