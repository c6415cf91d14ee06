"""Fixtures and helpers the Payme Subscribe API tests share: the Payme emulator served over HTTP, the app
built with PAYME_API_URL pointing at it, and a card bound the way the payer's browser binds it.

Import the fixtures by name into a test module (`from tests.payme_subscribe_support import payme_api, settings`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from billing.providers.payme import Payme
from billing.providers.payme.protocol import to_ms
from settings import Settings
from tests.conftest import YOOMONEY_API_TOKEN, FrozenClock
from tests.payme_support import PAYME_KEY, PAYME_MERCHANT, payme_settings
from webhook_server.emulators.payme import PaymeEmulator
from webhook_server.emulators.payme_subscribe import SubscribeEmulator
from webhook_server.emulators.yoomoney import YooMoneyEmulator
from webhook_server.keys import PROVIDERS

SANDBOX_CARD = "8600069195406311"
SANDBOX_CARD_MASKED = "860006******6311"
VERIFY_CODE = "666666"


class PaymeApi:
    """The emulator and where its Subscribe API listens."""

    def __init__(self, emulator: PaymeEmulator, base: str) -> None:
        self.emulator = emulator
        self.base = base
        self.url = base + "/api"

    @property
    def subscribe(self) -> SubscribeEmulator:
        return self.emulator.subscribe


@pytest.fixture
async def payme_api(clock: FrozenClock) -> AsyncIterator[PaymeApi]:
    emulator = PaymeEmulator(merchant_id=PAYME_MERCHANT, key=PAYME_KEY, notify_url="",
                             clock=lambda: to_ms(clock.now))
    server = TestServer(emulator.app())
    await server.start_server()
    yield PaymeApi(emulator, str(server.make_url("")).rstrip("/"))
    await server.close()


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str], payme_api: PaymeApi) -> Settings:
    _, yoomoney_url = yoomoney_emulator
    return payme_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_url,
                          payme_api_url=payme_api.url)


def charger_of(client: TestClient) -> Payme:
    """The Payme provider exactly as the web app built it from settings."""
    provider: Payme = client.app[PROVIDERS].get("payme")
    return provider


async def rpc(session: aiohttp.ClientSession, url: str, method: str, params: dict[str, Any], *,
              auth: str | None = PAYME_MERCHANT, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """One Subscribe API call as JSON-RPC on the wire; the decoded answer (result or error)."""
    sent = {**({"X-Auth": auth} if auth is not None else {}), **(headers or {})}
    async with session.post(url, json={"id": 1, "method": method, "params": params}, headers=sent) as response:
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer


async def bind_card(session: aiohttp.ClientSession, url: str, number: str = SANDBOX_CARD, *, expire: str = "0399",
                    verify: bool = True, save: bool = True) -> str:
    """cards.create → cards.get_verify_code → cards.verify with the merchant id alone, as the page's script."""
    created = await rpc(session, url, "cards.create", {"card": {"number": number, "expire": expire}, "save": save})
    token: str = created["result"]["card"]["token"]
    sent = await rpc(session, url, "cards.get_verify_code", {"token": token})
    assert sent["result"]["sent"] is True
    if verify:
        verified = await rpc(session, url, "cards.verify", {"token": token, "code": VERIFY_CODE})
        assert verified["result"]["card"]["verify"] is True
    return token


def error_code(answer: dict[str, Any]) -> int | None:
    error = answer.get("error")
    return error.get("code") if isinstance(error, dict) else None
