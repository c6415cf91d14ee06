"""The page's "Pay with YooKassa" button (POST /pay/{label}/yookassa) against the emulator: one payment per
attempt whatever the presses, the signed link checked as the page checks it, and a paid-through flow."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from billing.links import signed_pay_url
from billing.money import Money
from billing.plans import Catalogue, Plan
from billing.providers.yookassa.protocol import authorization, create_key, payment_request
from db import Invoice, InvoiceStatus, OperationStatus, Subscription
from db.yookassa import YooKassaPayment, attempts
from tests.consent_support import choose
from tests.helpers import Forms, new_invoice, operations
from tests.yookassa_support import (
    SECRET_KEY,
    SHOP_ID,
    checkout,
    link_fields,
    paid_with_yoomoney,
    press_pay,
    settings,
    yookassa,
    yookassa_clock,
    yookassa_emulator,
)
from webhook_server.app import create_app
from webhook_server.keys import CLOCK

__all__ = ["settings", "yookassa", "yookassa_emulator"]  # fixtures, imported for pytest


def creations(emulator) -> list[tuple[dict[str, str], Any]]:
    return [(headers, body) for method, path, headers, body in emulator.requests
            if (method, path) == ("POST", "/v3/payments")]


async def test_page_offers_yookassa_posting_the_signed_link_back(client, yookassa):
    invoice = await new_invoice(client)
    parser = Forms()
    parser.feed(await (await client.get(invoice["pay_url"].removeprefix("http://shop.test"))).text())
    form = parser.forms["pay-yookassa"]
    assert (form["method"], form["action"]) == ("post", f"/pay/{invoice['label']}/choose")
    assert form["fields"] == {**link_fields(invoice["pay_url"]), "provider": "yookassa", "choice": "once"}
    assert yookassa.requests == [], "showing the page creates nothing"


async def test_pressing_pay_creates_the_payment_and_sends_the_payer_to_yookassa(client, yookassa):
    invoice = await new_invoice(client)
    status, location = await press_pay(client, invoice)
    [payment] = yookassa.payments.values()
    assert (status, location) == (303, payment["confirmation"]["confirmation_url"])
    [(headers, body)] = creations(yookassa)
    assert headers["Idempotence-Key"] == create_key(invoice["label"], 0)
    assert headers["Authorization"] == authorization(SHOP_ID, SECRET_KEY)
    assert headers["Content-Type"] == "application/json"
    assert body == payment_request(amount=Money(29900, "RUB"), return_url=invoice["pay_url"] + "&returned=1",
                                   description=f"1 month, invoice {invoice['label']}", label=invoice["label"],
                                   save_method=False)  # no consent: the shop's permission alone saves nothing
    [record] = await attempts(invoice["label"])
    assert (record.payment_id, record.status.value, record.attempt) == (payment["id"], "pending", 0)


async def test_pressing_again_or_24_times_at_once_reuses_the_first_payment(client, yookassa):
    invoice = await new_invoice(client)
    first = await press_pay(client, invoice)
    again = await asyncio.gather(*(press_pay(client, invoice) for _ in range(24)))
    assert set(again) == {first} and len(yookassa.payments) == 1
    other = await new_invoice(client, user_id=43)
    together = await asyncio.gather(*(press_pay(client, other) for _ in range(24)))
    assert len(set(together)) == 1 and len(yookassa.payments) == 2
    keys = {headers["Idempotence-Key"] for headers, _ in creations(yookassa)}
    assert keys == {create_key(invoice["label"], 0), create_key(other["label"], 0)}


async def test_lost_answer_then_a_press_from_another_link_resends_the_stored_request(client, yookassa, settings):
    """Our process died between YooKassa's answer and saving it; the next press (here from a newer link in
    another language) re-sends the reserved body under the reserved key, and YooKassa answers the first payment."""
    invoice = await new_invoice(client)
    first = await press_pay(client, invoice)
    await YooKassaPayment.get_motor_collection().update_many(
        {}, {"$set": {"status": "creating", "payment_id": None, "confirmation_url": None}})
    exp = int(link_fields(invoice["pay_url"])["exp"]) - 60
    other_link = signed_pay_url("http://shop.test", settings.link_key, invoice["label"], exp, "ru")
    assert await press_pay(client, {**invoice, "pay_url": other_link}) == first
    bodies = [body for _, body in creations(yookassa)]
    assert len(bodies) == 2 and bodies[0] == bodies[1] and len(yookassa.payments) == 1
    [record] = await attempts(invoice["label"])
    assert record.status.value == "pending" and record.payment_id in yookassa.payments


async def test_bad_or_expired_link_is_refused_and_creates_nothing(client, yookassa):
    invoice = await new_invoice(client)
    other = await new_invoice(client, user_id=43)
    assert (await press_pay(client, invoice, sig="0" * 64))[0] == 403
    assert (await press_pay(client, invoice, exp=str(int(link_fields(invoice["pay_url"])["exp"]) + 1)))[0] == 403
    assert (await press_pay(client, invoice, lang="ru"))[0] == 403, "lang is part of the signed data"
    response = await client.post(f"/pay/{other['label']}/yookassa", data=link_fields(invoice["pay_url"]))
    assert response.status == 403, "a link signs one label"
    assert (await client.post(f"/pay/{invoice['label']}/yookassa", data={})).status == 403
    client.app[CLOCK].now += timedelta(days=2)
    assert (await press_pay(client, invoice))[0] == 410
    assert yookassa.requests == [] and await YooKassaPayment.find_all().to_list() == []


async def test_unknown_invoice_with_a_valid_signature_is_404(client, yookassa, settings):
    url = signed_pay_url("http://shop.test", settings.link_key, "inv_none", 2**36)
    response = await client.post("/pay/inv_none/yookassa", data=link_fields(url))
    assert response.status == 404 and yookassa.requests == []


async def test_api_down_shows_a_retry_button_and_the_retry_reuses_the_key(client, yookassa):
    invoice = await new_invoice(client)
    yookassa.fail_with = 500
    response = await client.post(f"/pay/{invoice['label']}/yookassa", data=link_fields(invoice["pay_url"]))
    assert response.status == 503
    parser = Forms()
    parser.feed(await response.text())
    assert parser.forms["pay-yookassa"]["fields"] == link_fields(invoice["pay_url"])
    yookassa.fail_with = None
    status, location = await press_pay(client, invoice)
    assert status == 303 and len(yookassa.payments) == 1
    assert {headers["Idempotence-Key"] for headers, _ in creations(yookassa)} == {create_key(invoice["label"], 0)}


async def test_api_refusal_is_502(client, yookassa):
    invoice = await new_invoice(client)
    yookassa.secret_key = "another-key"  # the shop's key was changed in the profile
    response = await client.post(f"/pay/{invoice['label']}/yookassa", data=link_fields(invoice["pay_url"]))
    assert response.status == 502 and yookassa.payments == {}


async def test_declined_payment_lets_the_payer_try_again_with_a_new_payment(client, yookassa):
    invoice = await new_invoice(client)
    _, first = await press_pay(client, invoice)
    async with aiohttp.ClientSession() as browser:
        async with browser.post(first, data={"outcome": "decline"}, allow_redirects=False) as declined:
            assert declined.status == 303 and declined.headers["Location"] == invoice["pay_url"] + "&returned=1"
    [record] = await attempts(invoice["label"])
    assert (record.status.value, record.cancel_party, record.cancel_reason) == (
        "canceled", "payment_network", "insufficient_funds")
    status, second = await press_pay(client, invoice)
    assert status == 303 and second != first
    assert [headers["Idempotence-Key"] for headers, _ in creations(yookassa)] == [
        create_key(invoice["label"], 0), create_key(invoice["label"], 1)]


async def test_expired_payment_whose_cancellation_was_missed_is_replaced(client, yookassa):
    invoice = await new_invoice(client)
    _, first = await press_pay(client, invoice)
    [payment_id] = yookassa.payments
    yookassa.cancel(payment_id, "yoo_money", "expired_on_confirmation")  # no notification reached us
    status, second = await press_pay(client, invoice)
    assert status == 303 and second != first and len(yookassa.payments) == 2
    assert [record.status.value for record in await attempts(invoice["label"])] == ["canceled", "pending"]


async def test_paying_through_the_emulator_activates_and_pressing_again_goes_back(client, worker, yookassa, clock):
    invoice = await new_invoice(client, user_id=21)
    _, checkout = await choose(client, invoice, "yookassa")  # pay and renew: the card is saved
    async with aiohttp.ClientSession() as browser:
        async with browser.get(checkout) as page:
            assert page.status == 200 and "299.00 RUB" in await page.text()
        async with browser.post(checkout, data={"outcome": "pay"}, allow_redirects=False) as paid:
            assert paid.status == 303 and paid.headers["Location"] == invoice["pay_url"] + "&returned=1"
    assert yookassa.deliveries == [("payment.succeeded", 200)]
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 21)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert subscription.payment_method == "MasterCard •••• 4444"
    status, location = await press_pay(client, invoice)
    assert (status, location) == (303, invoice["pay_url"]), "a paid invoice sends the payer back to its page"
    assert len(yookassa.payments) == 1
    response = await client.get(invoice["pay_url"].removeprefix("http://shop.test"))
    assert "pay-yookassa" not in await response.text()
    assert (await Invoice.find_one(Invoice.label == invoice["label"])).status is InvoiceStatus.PAID


async def test_invoice_without_a_rub_price_has_no_yookassa_button(settings, clock, redis_conn, yookassa_emulator):
    emulator, _ = yookassa_emulator
    plans = Catalogue({"uzs": Plan("uzs", "UZS only", 30, {"UZS": 3500000})})
    async with TestClient(TestServer(create_app(settings, plans=plans, clock=clock))) as bare:
        invoice = await new_invoice(bare, plan="uzs")
        page = await (await bare.get(invoice["pay_url"].removeprefix("http://shop.test"))).text()
        assert "pay-yookassa" not in page
        assert (await press_pay(bare, invoice))[0] == 404
    assert emulator.requests == []


async def test_oversized_press_gets_413(client, yookassa):
    invoice = await new_invoice(client)
    response = await client.post(f"/pay/{invoice['label']}/yookassa", data=b"exp=" + b"1" * (1024 * 1024 + 1),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 413 and yookassa.requests == []


async def test_an_invoice_another_provider_has_just_paid_gets_already_paid_and_no_payment(client, yookassa):
    """YooMoney's payment is recorded (the invoice claimed) but no worker has run yet: the invoice is still
    pending, and the button must not open a second payment for it."""
    invoice = await new_invoice(client, user_id=44)
    await paid_with_yoomoney(client, invoice["label"])
    assert (await Invoice.find_one(Invoice.label == invoice["label"])).status is InvoiceStatus.PENDING
    response = await client.post(f"/pay/{invoice['label']}/yookassa", data=link_fields(invoice["pay_url"]),
                                 allow_redirects=False)
    parser = Forms()
    parser.feed(await response.text())
    assert response.status == 409 and 'id="already-paid"' in await response.text()
    assert "pay-yookassa" not in parser.forms, "no button to pay again"
    assert yookassa.requests == [] and await YooKassaPayment.find_all().to_list() == []


async def test_a_press_after_a_lost_notification_records_the_succeeded_payment(client, worker, yookassa, clock,
                                                                               notifier):
    invoice = await new_invoice(client, user_id=45)
    _, confirmation = await choose(client, invoice, "yookassa")  # pay and renew: the card is saved
    yookassa.drop_deliveries()  # payment.succeeded never reaches us
    assert await checkout(confirmation) == 303
    [payment_id] = yookassa.payments
    assert await operations() == []
    status, location = await press_pay(client, invoice)
    assert (status, location) == (303, invoice["pay_url"] + "&returned=1"), "back to the page, which confirms"
    [operation] = await operations()
    assert (operation.operation_id, operation.status) == (payment_id, OperationStatus.RECORDED)
    assert len(creations(yookassa)) == 1, "no second payment"
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 45)
    assert subscription.current_period_end == clock.now + timedelta(days=30) and len(notifier.notices) == 1
    assert subscription.payment_method == "MasterCard •••• 4444"
    yookassa.deliver_again()
    yookassa_clock(yookassa).now += timedelta(minutes=1)
    assert await yookassa.redeliver_due() == 1 and yookassa.deliveries == [("payment.succeeded", 200)]
    await worker.drain()
    later = await Subscription.find_one(Subscription.user_id == 45)
    assert later.current_period_end == subscription.current_period_end
    assert [op.status for op in await operations()] == [OperationStatus.APPLIED] and len(notifier.notices) == 1
