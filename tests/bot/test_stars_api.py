"""bot/stars_api.py: the Stars Bot API calls on the wire (the reference's worked bodies), Telegram's errors as
the domain's, and the fake Bot API holding requests to Telegram's Stars rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiohttp import web
from aiohttp.test_utils import TestServer

from billing.errors import ProviderUnavailable
from billing.providers.base import ProviderRejected
from billing.providers.stars.protocol import AlreadyRefunded, StarsInvoice, build_invoice
from bot.main import make_bot
from bot.stars_api import BotStarsApi, OnDemandStarsApi
from tests.bot.conftest import BOT_TOKEN, USER_ID
from tests.conftest import make_settings

ONE_MONTH = StarsInvoice(title="1 month", description="Access for 30 days", payload="inv_abc", amount=150)
PRICES = "prices=%5B%7B%22label%22%3A+%221+month%22%2C+%22amount%22%3A+150%7D%5D"
MESSAGE = {"message_id": 42, "date": 1767225600, "chat": {"id": USER_ID, "type": "private"},
           "invoice": {"title": "1 month", "description": "Access for 30 days", "start_parameter": "",
                       "currency": "XTR", "total_amount": 150}}
RESULTS: dict[str, Any] = {"sendInvoice": MESSAGE, "createInvoiceLink": "https://t.me/$abc",
                           "answerPreCheckoutQuery": True, "editUserStarSubscription": True}


class Wire:
    """A Bot API stand-in that keeps each request's raw body, to compare with the reference byte for byte."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[str, str]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.bodies[method] = (request.content_type, (await request.read()).decode())
        return web.json_response({"ok": True, "result": RESULTS[method]})


@pytest.fixture
async def wire() -> AsyncIterator[tuple[Wire, Bot]]:
    recorder = Wire()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", recorder.handle)
    server = TestServer(app)
    await server.start_server()
    bot = make_bot(make_settings(bot_token=BOT_TOKEN, telegram_api_url=str(server.make_url("")).rstrip("/")))
    yield recorder, bot
    await bot.session.close()
    await server.close()


async def test_send_invoice_is_the_references_body(wire):
    recorder, bot = wire
    await BotStarsApi(bot).send_invoice(777, ONE_MONTH)
    assert recorder.bodies["sendInvoice"] == ("application/x-www-form-urlencoded", (
        "chat_id=777&title=1+month&description=Access+for+30+days&payload=inv_abc&currency=XTR&" + PRICES))


async def test_a_subscription_link_adds_the_period_and_no_chat(wire):
    recorder, bot = wire
    invoice = build_invoice("inv_abc", {"XTR": 150}, title="1 month", description="Access for 30 days",
                            subscription=True)
    assert await BotStarsApi(bot).create_invoice_link(invoice) == "https://t.me/$abc"
    assert recorder.bodies["createInvoiceLink"][1] == (
        "title=1+month&description=Access+for+30+days&payload=inv_abc&currency=XTR&" + PRICES
        + "&subscription_period=2592000")


async def test_cancelling_renewal_and_refusing_a_pre_checkout_are_the_references_bodies(wire):
    recorder, bot = wire
    await BotStarsApi(bot).edit_subscription(777, "stxABC", canceled=True)
    await bot.answer_pre_checkout_query(pre_checkout_query_id="pcq_2", ok=False, error_message="Invoice expired")
    assert recorder.bodies["editUserStarSubscription"][1] == (
        "user_id=777&telegram_payment_charge_id=stxABC&is_canceled=true")
    assert recorder.bodies["answerPreCheckoutQuery"][1] == (
        "pre_checkout_query_id=pcq_2&ok=false&error_message=Invoice+expired")


@pytest.mark.parametrize(("status", "description", "error"), [
    (400, "Bad Request: CHARGE_ALREADY_REFUNDED", AlreadyRefunded),
    (400, "Bad Request: CHARGE_NOT_FOUND", ProviderRejected),
    (403, "Forbidden: bot was blocked by the user", ProviderRejected),
    (500, "Internal Server Error", ProviderUnavailable),
], ids=["already-refunded", "refused", "forbidden", "server-error"])
async def test_telegrams_errors_become_the_domains_without_the_token(bot, fake, status, description, error):
    fake.fail("refundStarPayment", status, description)
    with pytest.raises(error) as raised:
        await BotStarsApi(bot).refund(USER_ID, "stxABC")
    assert BOT_TOKEN not in str(raised.value) and "refundStarPayment" in str(raised.value)


async def test_too_many_requests_and_an_unreachable_telegram_are_unavailable(bot, fake, settings):
    fake.rate_limit("refundStarPayment", 3)
    with pytest.raises(ProviderUnavailable):
        await BotStarsApi(bot).refund(USER_ID, "stxABC")
    nowhere = make_bot(settings.model_copy(update={"telegram_api_url": "http://127.0.0.1:9"}))
    try:
        with pytest.raises(ProviderUnavailable) as raised:
            await BotStarsApi(nowhere).refund(USER_ID, "stxABC")
        assert BOT_TOKEN not in str(raised.value)
    finally:
        await nowhere.session.close()


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
async def test_the_fake_refuses_invoices_telegram_refuses(bot, fake, invoice, description):
    with pytest.raises(ProviderRejected, match=description):
        await BotStarsApi(bot).create_invoice_link(invoice)


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


async def test_the_fake_lists_transactions_in_pages_and_refuses_a_second_refund(bot, fake):
    invoice = fake.stars.find(url=await BotStarsApi(bot).create_invoice_link(ONE_MONTH))
    charges = [fake.stars.charge(fake, USER_ID, invoice)["message"]["successful_payment"]["telegram_payment_charge_id"]
               for _ in range(3)]
    api = BotStarsApi(bot)
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
