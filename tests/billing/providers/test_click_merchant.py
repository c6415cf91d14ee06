"""billing/providers/click/merchant.py over real HTTP: the Auth header each call carries, Click's replies and
refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from billing.errors import ProviderUnavailable
from billing.providers.click import ClickPayment, MerchantApi
from webhook_server.http_transport import AiohttpTransport

NOW = datetime(2025, 11, 22, 12, 0, tzinfo=UTC)  # Unix 1763812800, the reference's Auth vector


class FakeClick:
    """Answers each path with the reply a test sets; keeps the requests it got."""

    def __init__(self) -> None:
        self.replies: dict[str, tuple[int, Any]] = {}
        self.got: list[web.Request] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(request)
        status, body = self.replies.get(request.path, (404, {"error_code": -404}))
        return web.json_response(body, status=status) if not isinstance(body, str) else web.Response(
            text=body, status=status)


@pytest.fixture
async def api() -> AsyncIterator[tuple[MerchantApi, FakeClick]]:
    fake = FakeClick()
    app = web.Application()
    app.add_routes([web.get("/{tail:.*}", fake.handle)])
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield MerchantApi(AiohttpTransport(session), str(server.make_url("/v2/merchant/")), service_id=11111,
                          merchant_user_id="33333", secret="test_secret"), fake
    await server.close()


BY_LABEL = "/v2/merchant/payment/status_by_mti/11111/inv-42/2025-11-22"
STATUS = "/v2/merchant/payment/status/11111/555"


async def test_status_by_label_then_status_with_the_reference_auth_header(api) -> None:
    client, fake = api
    fake.replies[BY_LABEL] = (200, {"error_code": 0, "payment_id": 555, "merchant_trans_id": "inv-42"})
    fake.replies[STATUS] = (200, {"error_code": 0, "payment_id": 555, "payment_status": 2})
    assert await client.payment_by_label("inv-42", date(2025, 11, 22), now=NOW) == ClickPayment(555, 2)
    assert [request.path for request in fake.got] == [BY_LABEL, STATUS]
    assert {request.headers["Auth"] for request in fake.got} == {
        "33333:e03852f85cad3d9e0473938eabd86826403e75a5:1763812800"}
    assert fake.got[0].headers["Accept"] == "application/json"


async def test_a_status_in_the_label_reply_is_used_as_is(api) -> None:
    client, fake = api
    fake.replies[BY_LABEL] = (200, {"error_code": 0, "payment_id": 555, "payment_status": 1})
    payment = await client.payment_by_label("inv-42", date(2025, 11, 22), now=NOW)
    assert payment == ClickPayment(555, 1) and not payment.paid and len(fake.got) == 1


async def test_a_negative_error_code_is_no_payment(api) -> None:
    client, fake = api
    fake.replies[BY_LABEL] = (200, {"error_code": -5, "error_note": "not found"})
    assert await client.payment_by_label("inv-42", date(2025, 11, 22), now=NOW) is None


@pytest.mark.parametrize("reply", [(401, {"error_code": -1}), (500, {"error_code": -1}), (502, "down"),
                                   (200, "not json"), (200, {"payment_id": 555}), (200, {"error_code": "0"})])
async def test_click_that_cannot_be_asked_is_unavailable(api, reply) -> None:
    client, fake = api
    fake.replies[BY_LABEL] = reply
    with pytest.raises(ProviderUnavailable):
        await client.payment_by_label("inv-42", date(2025, 11, 22), now=NOW)


async def test_an_unreachable_click_is_unavailable() -> None:
    async with aiohttp.ClientSession() as session:
        client = MerchantApi(AiohttpTransport(session), "http://127.0.0.1:9/v2/merchant", service_id=1,
                             merchant_user_id="1", secret="s")
        with pytest.raises(ProviderUnavailable):
            await client.payment_status(1, now=NOW)
