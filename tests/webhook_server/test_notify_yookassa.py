"""POST /notify/yookassa through real HTTP, the YooKassa emulator as the API, the real Redis and a real RQ worker.

A notification is believed only from YooKassa's addresses (here the test client's 127.0.0.1 stands in
for them) and only as far as the re-fetched object agrees; every other case changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from billing.errors import LedgerUnavailable
from billing.money import Money
from billing.providers.yookassa.protocol import authorization, build_notification
from db import Invoice, InvoiceStatus, Operation, OperationStatus, Subscription
from db.yookassa import YooKassaPayment
from tests.conftest import make_settings
from tests.consent_support import consent_on
from tests.helpers import new_invoice, operations
from tests.webhook_server.test_redis_faults import free_port
from tests.yookassa_support import (
    PRICE_MONTH_RUB,
    SECRET_KEY,
    SHOP_ID,
    created_payment,
    paid_payment,
    paid_with_yoomoney,
    post_notification,
    settings,
    yookassa,
    yookassa_emulator,
    yookassa_settings,
)
from webhook_server.app import create_app
from webhook_server.keys import PROVIDERS

__all__ = ["settings", "yookassa", "yookassa_emulator"]  # fixtures, imported for pytest


async def invoice_status(label: str) -> InvoiceStatus:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice.status


def fetches(emulator) -> list[str]:
    return [path for method, path, _, _ in emulator.requests if method == "GET"]


async def test_succeeded_payment_activates_the_subscription_and_keeps_the_card(client, worker, yookassa, clock,
                                                                               notifier):
    invoice = await new_invoice(client, user_id=7)
    await consent_on(invoice["label"], "yookassa")  # the payer chose "pay and renew" on the page
    payment_id = paid_payment(yookassa, invoice["label"])

    assert await post_notification(client, yookassa.notification("payment.succeeded", payment_id)) == 200
    await worker.drain()

    assert await invoice_status(invoice["label"]) is InvoiceStatus.PAID
    subscription = await Subscription.find_one(Subscription.user_id == 7)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert (subscription.payment_method, subscription.payment_provider, subscription.payment_token) == (
        "MasterCard •••• 4444", "yookassa", payment_id)
    [operation] = await operations()
    assert (operation.status, operation.amount, operation.net_amount) == (OperationStatus.APPLIED, 29900, 28853)
    assert [n.user_id for n in notifier.notices] == [7]
    [(method, path, headers, _)] = yookassa.requests
    assert (method, path) == ("GET", f"/v3/payments/{payment_id}")
    assert headers["Authorization"] == authorization(SHOP_ID, SECRET_KEY)


async def test_payment_without_a_saved_method_keeps_no_token(client, worker, yookassa):
    invoice = await new_invoice(client, user_id=8)
    payment_id = paid_payment(yookassa, invoice["label"], save=False)
    assert await post_notification(client, yookassa.notification("payment.succeeded", payment_id)) == 200
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 8)
    assert (subscription.payment_method, subscription.payment_token) == (None, None)


async def test_redelivery_changes_nothing(client, worker, yookassa, clock, notifier):
    invoice = await new_invoice(client, user_id=9)
    body = yookassa.notification("payment.succeeded", paid_payment(yookassa, invoice["label"]))
    assert await post_notification(client, body) == 200
    await worker.drain()
    assert await post_notification(client, body) == 200
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 9)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(await operations()) == 1 and len(notifier.notices) == 1


async def test_24_concurrent_deliveries_extend_once(client, worker, yookassa, queues, clock, notifier):
    invoice = await new_invoice(client, user_id=10)
    body = yookassa.notification("payment.succeeded", paid_payment(yookassa, invoice["label"]))
    statuses = await asyncio.gather(*(post_notification(client, body) for _ in range(24)))
    assert statuses == [200] * 24 and queues.depth() == 1
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 10)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(await operations()) == 1 and len(notifier.notices) == 1


async def test_the_body_is_only_a_hint_the_fetched_label_is_credited(client, worker, yookassa):
    invoice = await new_invoice(client, user_id=11)
    other = await new_invoice(client, user_id=12)
    body = yookassa.notification("payment.succeeded", paid_payment(yookassa, invoice["label"]))
    body["object"]["metadata"] = {"label": other["label"]}
    assert await post_notification(client, body) == 200
    await worker.drain()
    assert await invoice_status(invoice["label"]) is InvoiceStatus.PAID
    assert await invoice_status(other["label"]) is InvoiceStatus.PENDING


async def test_notification_the_api_contradicts_is_refused_and_changes_nothing(client, worker, yookassa, queues):
    invoice = await new_invoice(client)
    pending = created_payment(yookassa, invoice["label"])
    forged = build_notification("payment.succeeded", {**yookassa.notification("payment.succeeded", pending)["object"],
                                                      "status": "succeeded", "paid": True})
    assert await post_notification(client, forged) == 409, "the API says pending"
    paid = paid_payment(yookassa, invoice["label"])
    cheaper = yookassa.notification("payment.succeeded", paid)
    cheaper["object"]["amount"] = {"value": "1.00", "currency": "RUB"}
    assert await post_notification(client, cheaper) == 409, "the body's amount is not the API's"
    wrong_event = yookassa.notification("payment.succeeded", paid)
    wrong_event["event"] = "payment.canceled"
    assert await post_notification(client, wrong_event) == 409, "the API says succeeded, not canceled"
    await worker.drain()
    assert await operations() == [] and queues.depth() == 0
    assert await invoice_status(invoice["label"]) is InvoiceStatus.PENDING


async def test_object_the_shop_does_not_have_is_acknowledged_and_ignored(client, yookassa, queues):
    invoice = await new_invoice(client)
    body = yookassa.notification("payment.succeeded", paid_payment(yookassa, invoice["label"]))
    body["object"]["id"] = "2f6a1c3e-000f-5000-8000-000000000000"
    assert await post_notification(client, body) == 200
    assert await operations() == [] and queues.depth() == 0


async def test_unknown_label_is_acknowledged_and_kept_for_review(client, yookassa, queues):
    body = yookassa.notification("payment.succeeded", paid_payment(yookassa, "inv_doesnotexist"))
    assert await post_notification(client, body) == 200
    [operation] = await operations()
    assert (operation.status, operation.reason) == (OperationStatus.REJECTED, "unknown_label")
    assert queues.depth() == 0


@pytest.mark.parametrize(("minor", "currency", "reason"), [(PRICE_MONTH_RUB - 1, "RUB", "wrong_amount"),
                                                            (PRICE_MONTH_RUB, "USD", "wrong_currency")])
async def test_wrong_amount_or_currency_never_activates(client, worker, yookassa, minor, currency, reason):
    invoice = await new_invoice(client)
    payment_id = paid_payment(yookassa, invoice["label"], minor, currency=currency)
    assert await post_notification(client, yookassa.notification("payment.succeeded", payment_id)) == 200
    await worker.drain()
    [operation] = await operations()
    assert (operation.status, operation.reason) == (OperationStatus.REJECTED, reason)
    assert await invoice_status(invoice["label"]) is InvoiceStatus.PENDING


async def test_test_payment_while_not_in_test_mode_is_refused(client, yookassa, queues):
    yookassa.test = False  # a live payment reaching a server configured for a test shop
    invoice = await new_invoice(client)
    body = yookassa.notification("payment.succeeded", paid_payment(yookassa, invoice["label"]))
    assert await post_notification(client, body) == 409
    assert await operations() == [] and queues.depth() == 0


async def test_api_down_answers_503_and_the_redelivery_is_applied_once(client, worker, yookassa, clock, notifier):
    invoice = await new_invoice(client, user_id=13)
    body = yookassa.notification("payment.succeeded", paid_payment(yookassa, invoice["label"]))
    for status in (500, 502, 401, 429):
        yookassa.fail_with = status
        assert await post_notification(client, body) == 503, status
    assert await operations() == []
    yookassa.fail_with = None
    assert await post_notification(client, body) == 200
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 13)
    assert subscription.current_period_end == clock.now + timedelta(days=30) and len(notifier.notices) == 1


async def test_api_unreachable_answers_503(plans, clock, redis_conn, yookassa_emulator):
    emulator, _ = yookassa_emulator
    app = create_app(make_settings(**yookassa_settings(f"http://127.0.0.1:{free_port()}/v3")), plans=plans,
                     clock=clock)
    async with TestClient(TestServer(app)) as bare:
        invoice = await new_invoice(bare)
        body = emulator.notification("payment.succeeded", paid_payment(emulator, invoice["label"]))
        assert await post_notification(bare, body) == 503
    assert await Operation.find_all().to_list() == []


async def test_queue_failure_answers_503_and_the_redelivery_activates_once(client, worker, yookassa, queues,
                                                                          monkeypatch, clock, notifier):
    invoice = await new_invoice(client, user_id=14)
    body = yookassa.notification("payment.succeeded", paid_payment(yookassa, invoice["label"]))
    real = queues.enqueue_fulfilment

    async def redis_down(*args: str) -> None:
        raise LedgerUnavailable("redis: ConnectionError")

    monkeypatch.setattr(queues, "enqueue_fulfilment", redis_down)
    assert await post_notification(client, body) == 503
    [recorded] = await operations()
    assert recorded.status is OperationStatus.RECORDED, "recorded; only the enqueue failed"
    monkeypatch.setattr(queues, "enqueue_fulfilment", real)
    assert await post_notification(client, body) == 200
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 14)
    assert subscription.current_period_end == clock.now + timedelta(days=30) and len(notifier.notices) == 1


class Crash(Exception):
    """The process dies at a step: no answer reaches YooKassa, which delivers again."""


@pytest.mark.parametrize("step", ["after_fetch", "after_ledger_record"])
async def test_crash_between_steps_then_redelivery_activates_once(step, client, worker, yookassa, clock, notifier):
    invoice = await new_invoice(client, user_id=15)
    body = yookassa.notification("payment.succeeded", paid_payment(yookassa, invoice["label"]))
    provider = client.app[PROVIDERS].get("yookassa")

    def crash_at(reached: str) -> None:
        if reached == step:
            raise Crash(step)

    provider.checkpoint = crash_at
    assert await post_notification(client, body) == 500
    provider.checkpoint = lambda reached: None
    assert await post_notification(client, body) == 200
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 15)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert [op.status for op in await operations()] == [OperationStatus.APPLIED] and len(notifier.notices) == 1


async def test_canceled_payment_records_why_and_the_invoice_stays_payable(client, worker, yookassa, queues):
    invoice = await new_invoice(client)
    payment_id = created_payment(yookassa, invoice["label"])
    yookassa.cancel(payment_id, "payment_network", "insufficient_funds")
    body = yookassa.notification("payment.canceled", payment_id)
    assert await post_notification(client, body) == 200
    assert await post_notification(client, body) == 200
    [record] = await YooKassaPayment.find_all().to_list()
    assert (record.payment_id, record.status.value, record.cancel_party, record.cancel_reason) == (
        payment_id, "canceled", "payment_network", "insufficient_funds")
    assert await operations() == [] and queues.depth() == 0
    assert await invoice_status(invoice["label"]) is InvoiceStatus.PENDING


async def test_held_payment_is_captured_when_it_pays_the_invoice_exactly(client, worker, yookassa):
    invoice = await new_invoice(client, user_id=16)
    payment_id = created_payment(yookassa, invoice["label"], capture=False)
    yookassa.succeed(payment_id)
    assert await post_notification(client, yookassa.notification("payment.waiting_for_capture", payment_id)) == 200
    await yookassa.settle()  # the emulator notifies payment.succeeded once captured
    await worker.drain()
    assert yookassa.payments[payment_id]["status"] == "succeeded"
    assert ("payment.succeeded", 200) in yookassa.deliveries
    assert await invoice_status(invoice["label"]) is InvoiceStatus.PAID


async def test_held_payment_that_does_not_pay_the_invoice_is_released(client, worker, yookassa):
    invoice = await new_invoice(client)
    payment_id = created_payment(yookassa, invoice["label"], PRICE_MONTH_RUB + 100, capture=False)
    yookassa.succeed(payment_id)
    assert await post_notification(client, yookassa.notification("payment.waiting_for_capture", payment_id)) == 200
    await yookassa.settle()
    assert yookassa.payments[payment_id]["status"] == "canceled"
    assert await invoice_status(invoice["label"]) is InvoiceStatus.PENDING


async def test_foreign_address_gets_403_before_anything_is_read(plans, clock, redis_conn, yookassa_emulator):
    emulator, url = yookassa_emulator
    settings = make_settings(**yookassa_settings(url + "/v3", yookassa_notify_ips="185.71.76.0/27"))
    async with TestClient(TestServer(create_app(settings, plans=plans, clock=clock))) as bare:
        invoice = await new_invoice(bare)
        body = emulator.notification("payment.succeeded", paid_payment(emulator, invoice["label"]))
        assert await post_notification(bare, body) == 403
        assert await post_notification(bare, body, {"X-Forwarded-For": "185.71.76.10"}) == 403, \
            "X-Forwarded-For is believed only from TRUSTED_PROXIES"
    assert fetches(emulator) == [] and await Operation.find_all().to_list() == []


async def test_behind_a_trusted_proxy_the_forwarded_address_is_checked(plans, clock, redis_conn, yookassa_emulator):
    emulator, url = yookassa_emulator
    settings = make_settings(trusted_proxies="127.0.0.1",
                             **yookassa_settings(url + "/v3", yookassa_notify_ips="185.71.76.0/27,2a02:5180::/32"))
    async with TestClient(TestServer(create_app(settings, plans=plans, clock=clock))) as proxied:
        invoice = await new_invoice(proxied)
        body = emulator.notification("payment.succeeded", paid_payment(emulator, invoice["label"]))
        assert await post_notification(proxied, body) == 403, "the proxy itself is not YooKassa"
        assert await post_notification(proxied, body, {"X-Forwarded-For": "8.8.8.8"}) == 403
        assert await post_notification(proxied, body, {"X-Forwarded-For": "185.71.76.10, 8.8.8.8"}) == 403
        assert await post_notification(proxied, body, {"X-Forwarded-For": "8.8.8.8, 185.71.76.10"}) == 200
        assert await post_notification(proxied, body, {"X-Forwarded-For": "2a02:5180:0:1509::1"}) == 200
    [operation] = await Operation.find_all().to_list()
    assert operation.status is OperationStatus.RECORDED


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"type":"notification"}', b'{"type":"notification","event":"payment.succeeded"}',
    b'{"type":"notification","event":"payment.succeeded","object":{"id":"../refunds/x"}}',
    b'{"type":"payment","event":"payment.succeeded","object":{"id":"p1"}}',
])
async def test_malformed_bodies_get_400_and_nothing_is_fetched(client, yookassa, body):
    response = await client.post("/notify/yookassa", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert fetches(yookassa) == [] and await operations() == []


async def test_events_we_do_not_use_are_acknowledged_unread(client, yookassa):
    body = {"type": "notification", "event": "payment_method.active", "object": {"id": "pm-1"}}
    assert await post_notification(client, body) == 200
    assert fetches(yookassa) == []


async def test_oversized_body_gets_413(client, yookassa):
    response = await client.post("/notify/yookassa", data=b"{" + b" " * (1024 * 1024 + 1) + b"}",
                                 headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert fetches(yookassa) == [] and await operations() == []


async def test_disabled_yookassa_answers_404_and_the_page_has_no_yookassa_button(plans, clock, redis_conn):
    async with TestClient(TestServer(create_app(make_settings(), plans=plans, clock=clock))) as bare:
        body = {"type": "notification", "event": "payment.succeeded", "object": {"id": "p1"}}
        assert await post_notification(bare, body) == 404
        invoice = await new_invoice(bare)
        assert (await bare.post(f"/pay/{invoice['label']}/yookassa", data={})).status == 404
        page = await (await bare.get(invoice["pay_url"].removeprefix("http://shop.test"))).text()
        assert "pay-yoomoney" in page and "pay-yookassa" not in page


async def test_renewal_charge_keeps_its_method_and_no_token_or_secret_is_logged(client, worker, yookassa, caplog):
    caplog.set_level(logging.DEBUG)
    token = "2e0d37a5-000f-5000-9000-1d6b39e5b4b7"
    yookassa.saved_methods.add(token)  # a card saved by an earlier payment
    invoice = await new_invoice(client, user_id=17)
    await consent_on(invoice["label"], "yookassa")
    payment = yookassa.create({"amount": {"value": "299.00", "currency": "RUB"}, "capture": True,
                               "payment_method_id": token, "metadata": {"label": invoice["label"]}})
    assert payment["status"] == "succeeded"
    assert await post_notification(client, yookassa.notification("payment.succeeded", payment["id"])) == 200
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 17)
    assert subscription.payment_token == token
    metrics = await (await client.get("/metrics")).text()
    assert 'outcome="accepted"' in metrics and 'provider="yookassa"' in metrics
    assert token not in caplog.text and SECRET_KEY not in caplog.text
    assert authorization(SHOP_ID, SECRET_KEY).split()[1] not in caplog.text


async def test_money_left_in_the_emulator_matches_the_ledger(client, worker, yookassa):
    """A sanity check of the emulator's own bookkeeping the other tests rely on."""
    invoice = await new_invoice(client)
    payment_id = paid_payment(yookassa, invoice["label"])
    refund = yookassa.refund(payment_id, Money(100, "RUB"))
    assert refund["status"] == "succeeded"
    assert yookassa.payments[payment_id]["refunded_amount"] == {"value": "1.00", "currency": "RUB"}
    assert yookassa.payments[payment_id]["refundable"] is True


async def test_held_payment_for_an_invoice_another_provider_has_claimed_is_released(client, worker, yookassa):
    invoice = await new_invoice(client, user_id=17)
    await paid_with_yoomoney(client, invoice["label"])  # recorded, not yet fulfilled
    payment_id = created_payment(yookassa, invoice["label"], capture=False)
    yookassa.succeed(payment_id)
    assert await post_notification(client, yookassa.notification("payment.waiting_for_capture", payment_id)) == 200
    await yookassa.settle()
    assert yookassa.payments[payment_id]["status"] == "canceled", "the money goes back to the payer untaken"
    await worker.drain()
    paid = await Invoice.find_one(Invoice.label == invoice["label"])
    assert paid.status is InvoiceStatus.PAID and paid.paid_by.startswith("yoomoney:")
    assert [op.provider for op in await operations()] == ["yoomoney"]
