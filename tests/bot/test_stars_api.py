"""bot/stars_api.py (the bot's, over aiogram) and bot/stars_http.py (the web's and the worker's, over
bot/bot_api.py): the Stars Bot API calls on the wire (the reference's worked bodies), Telegram's errors as the
domain's, and the fake Bot API holding requests to Telegram's Stars rules. Each StarsApi test runs against both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot
from aiohttp import web
from aiohttp.test_utils import TestServer

from billing.errors import ProviderUnavailable
from billing.providers.base import ProviderRejected
from billing.providers.stars.protocol import AlreadyRefunded, StarsApi, StarsInvoice, build_invoice
from bot.bot_api import bot_api_for
from bot.main import make_bot
from bot.stars_api import BotStarsApi, OnDemandStarsApi
from bot.stars_http import HttpStarsApi
from settings import Settings
from tests.bot.conftest import BOT_TOKEN, USER_ID
from tests.conftest import make_settings
from webhook_server.payout_services import OwnSessionTransport

ONE_MONTH = StarsInvoice(title="1 month", description="Access for 30 days", payload="inv_abc", amount=150)
PRICES = "prices=%5B%7B%22label%22%3A+%221+month%22%2C+%22amount%22%3A+150%7D%5D"
MESSAGE = {"message_id": 42, "date": 1767225600, "chat": {"id": USER_ID, "type": "private"},
           "invoice": {"title": "1 month", "description": "Access for 30 days", "start_parameter": "",
                       "currency": "XTR", "total_amount": 150}}
RESULTS: dict[str, Any] = {"sendInvoice": MESSAGE, "createInvoiceLink": "https://t.me/$abc",
                           "answerPreCheckoutQuery": True, "editUserStarSubscription": True}


IMPLEMENTATIONS = ["aiogram", "plain"]


@asynccontextmanager
async def stars_api(kind: str, settings: Settings) -> AsyncIterator[StarsApi]:
    """The bot's StarsApi over an aiogram Bot, or the one over bot/bot_api.py and an HTTP session."""
    if kind == "aiogram":
        bot = make_bot(settings)
        try:
            yield BotStarsApi(bot)
        finally:
            await bot.session.close()
        return
    transport = OwnSessionTransport(15)
    api = bot_api_for(settings, transport)
    assert api is not None
    try:
        yield HttpStarsApi(api)
    finally:
        await transport.close()


@pytest.fixture(params=IMPLEMENTATIONS)
async def stars(request: pytest.FixtureRequest, settings: Settings, fake: Any) -> AsyncIterator[StarsApi]:
    async with stars_api(request.param, settings) as api:
        yield api


class Wire:
    """A Bot API stand-in that keeps each request's raw body, to compare with the reference byte for byte."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[str, str]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.bodies[method] = (request.content_type, (await request.read()).decode())
        return web.json_response({"ok": True, "result": RESULTS[method]})


@asynccontextmanager
async def wire_server() -> AsyncIterator[tuple[Wire, Settings]]:
    """The recording stand-in on loopback, and settings whose TELEGRAM_API_URL is it."""
    recorder = Wire()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", recorder.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield recorder, make_settings(bot_token=BOT_TOKEN, telegram_api_url=str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


@pytest.fixture(params=IMPLEMENTATIONS)
async def wire(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Wire, StarsApi]]:
    async with wire_server() as (recorder, settings), stars_api(request.param, settings) as api:
        yield recorder, api


async def test_send_invoice_is_the_references_body(wire):
    recorder, api = wire
    await api.send_invoice(777, ONE_MONTH)
    assert recorder.bodies["sendInvoice"] == ("application/x-www-form-urlencoded", (
        "chat_id=777&title=1+month&description=Access+for+30+days&payload=inv_abc&currency=XTR&" + PRICES))


async def test_a_subscription_link_adds_the_period_and_no_chat(wire):
    recorder, api = wire
    invoice = build_invoice("inv_abc", {"XTR": 150}, title="1 month", description="Access for 30 days",
                            subscription=True)
    assert await api.create_invoice_link(invoice) == "https://t.me/$abc"
    assert recorder.bodies["createInvoiceLink"][1] == (
        "title=1+month&description=Access+for+30+days&payload=inv_abc&currency=XTR&" + PRICES
        + "&subscription_period=2592000")


async def test_cancelling_renewal_is_the_references_body(wire):
    recorder, api = wire
    await api.edit_subscription(777, "stxABC", canceled=True)
    assert recorder.bodies["editUserStarSubscription"][1] == (
        "user_id=777&telegram_payment_charge_id=stxABC&is_canceled=true")


async def test_refusing_a_pre_checkout_is_the_references_body():
    async with wire_server() as (recorder, settings):
        bot = make_bot(settings)
        try:
            await bot.answer_pre_checkout_query(pre_checkout_query_id="pcq_2", ok=False,
                                                error_message="Invoice expired")
        finally:
            await bot.session.close()
    assert recorder.bodies["answerPreCheckoutQuery"][1] == (
        "pre_checkout_query_id=pcq_2&ok=false&error_message=Invoice+expired")


@pytest.mark.parametrize(("status", "description", "error"), [
    (400, "Bad Request: CHARGE_ALREADY_REFUNDED", AlreadyRefunded),
    (400, "Bad Request: CHARGE_NOT_FOUND", ProviderRejected),
    (403, "Forbidden: bot was blocked by the user", ProviderRejected),
    (500, "Internal Server Error", ProviderUnavailable),
], ids=["already-refunded", "refused", "forbidden", "server-error"])
async def test_telegrams_errors_become_the_domains_without_the_token(stars, fake, status, description, error):
    fake.fail("refundStarPayment", status, description)
    with pytest.raises(error) as raised:
        await stars.refund(USER_ID, "stxABC")
    assert BOT_TOKEN not in str(raised.value) and "refundStarPayment" in str(raised.value)


@pytest.mark.parametrize("kind", IMPLEMENTATIONS)
async def test_too_many_requests_and_an_unreachable_telegram_are_unavailable(kind, fake, settings):
    fake.rate_limit("refundStarPayment", 3)
    async with stars_api(kind, settings) as api:
        with pytest.raises(ProviderUnavailable):
            await api.refund(USER_ID, "stxABC")
    async with stars_api(kind, settings.model_copy(update={"telegram_api_url": "http://127.0.0.1:9"})) as nowhere:
        with pytest.raises(ProviderUnavailable) as raised:
            await nowhere.refund(USER_ID, "stxABC")
        assert BOT_TOKEN not in str(raised.value)


async def test_the_on_demand_api_opens_a_bot_per_call_and_closes_it(fake, settings):
    made: list[Bot] = []

    def factory() -> Bot:
        made.append(make_bot(settings))
        return made[-1]

    api = OnDemandStarsApi(factory)
    link = await api.create_invoice_link(ONE_MONTH)
    assert link.startswith("https://t.me/$") and await api.transactions(0, 100) == []
    assert len(made) == 2 and all(bot.session._session is None or bot.session._session.closed for bot in made)


# ---- the fake holds requests to Telegram's Stars rules ------------------------------------------

@pytest.mark.parametrize(("invoice", "description"), [
    (StarsInvoice("1 month", "d", "inv_abc", 150, subscription_period=86400), "SUBSCRIPTION_PERIOD_INVALID"),
    (StarsInvoice("1 month", "d", "inv_abc", 10001, subscription_period=2592000), "SUBSCRIPTION_PRICE_INVALID"),
    (StarsInvoice("x" * 33, "d", "inv_abc", 150), "INVOICE_TITLE_OR_DESCRIPTION_INVALID"),
    (StarsInvoice("t", "d", "i" * 129, 150), "INVOICE_PAYLOAD_INVALID"),
], ids=["period", "price-cap", "title", "payload"])
async def test_the_fake_refuses_invoices_telegram_refuses(stars, invoice, description):
    with pytest.raises(ProviderRejected, match=description):
        await stars.create_invoice_link(invoice)


async def test_the_fake_refuses_other_currencies_and_two_prices(bot, fake):
    from aiogram.types import LabeledPrice

    from bot.stars_api import _call

    for currency, prices in (("RUB", [LabeledPrice(label="a", amount=1)]),
                             ("XTR", [LabeledPrice(label="a", amount=1), LabeledPrice(label="b", amount=2)])):
        with pytest.raises(ProviderRejected):
            await _call("sendInvoice", bot.send_invoice(chat_id=USER_ID, title="t", description="d", payload="p",
                                                        currency=currency, prices=prices))


async def test_the_fake_answers_a_pre_checkout_once_and_wants_a_reason_for_no(bot, fake):
    invoice = fake.stars.find(url=await BotStarsApi(bot).create_invoice_link(ONE_MONTH))
    query_id = fake.stars.pre_checkout_query(USER_ID, invoice)["pre_checkout_query"]["id"]
    with pytest.raises(ProviderRejected):
        await _answer(bot, query_id, ok=False)
    await _answer(bot, query_id, ok=True)
    with pytest.raises(ProviderRejected, match="query is too old"):
        await _answer(bot, query_id, ok=True)
    with pytest.raises(ProviderRejected, match="query is too old"):
        await _answer(bot, "pcq_unknown", ok=True)


async def _answer(bot: Bot, query_id: str, *, ok: bool) -> None:
    from bot.stars_api import _call

    await _call("answerPreCheckoutQuery", bot.answer_pre_checkout_query(pre_checkout_query_id=query_id, ok=ok))


async def test_the_fake_lists_transactions_in_pages_and_refuses_a_second_refund(stars, fake):
    api = stars
    invoice = fake.stars.find(url=await api.create_invoice_link(ONE_MONTH))
    charges = [fake.stars.charge(fake, USER_ID, invoice)["message"]["successful_payment"]["telegram_payment_charge_id"]
               for _ in range(3)]
    await api.refund(USER_ID, charges[0])
    with pytest.raises(AlreadyRefunded):
        await api.refund(USER_ID, charges[0])
    with pytest.raises(ProviderRejected, match="CHARGE_NOT_FOUND"):
        await api.refund(USER_ID + 1, charges[1])
    page = await api.transactions(1, 2)
    assert [tx["id"] for tx in page] == charges[1:3]
    [refund] = await api.transactions(3, 100)
    assert refund["id"] == charges[0] and refund["receiver"]["user"]["id"] == USER_ID and "source" not in refund


async def test_the_fakes_pay_and_renew_routes_answer_unknown_invoices_and_subscriptions(fake_telegram):
    import aiohttp

    _, base = fake_telegram
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/fake/stars/pay", data={"user_id": USER_ID, "url": "https://t.me/$nope"}) as r:
            assert r.status == 404
        async with session.post(f"{base}/fake/stars/pay", data={"payload": "inv_x", "amount": "abc"}) as r:
            assert r.status == 404
        async with session.post(f"{base}/fake/stars/renew", data={"user_id": USER_ID, "payload": "inv_x"}) as r:
            assert r.status == 409
