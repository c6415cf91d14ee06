"""An order paid through YooKassa (the page's button, the emulator's checkout, its notification), and refunded in
parts through the admin API: each part asked once, counted once, the last one making it a full refund."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from billing.consent import consent_signature
from billing.money import Money
from billing.providers.yookassa.protocol import idempotence_key
from billing.refunds import POLL_DELAYS
from billing.renewals.scheduler import tick
from db import Invoice, InvoiceStatus, OperationStatus, Subscription
from tests.conftest import AUTH
from tests.helpers import get_json, operations
from tests.webhook_server.test_orders_api import post_order
from tests.yookassa_support import checkout, link_fields, press_pay, settings, yookassa, yookassa_emulator
from webhook_server.emulators.yookassa_refunds import RefundTimeline
from webhook_server.keys import PROVIDERS, QUEUES, SETTINGS
from webhook_server.renewal_services import renewal_services

__all__ = ["settings", "yookassa", "yookassa_emulator"]  # fixtures, imported for pytest

ORDER = {"user_id": 91, "amounts": {"RUB": 50000}, "description": "Consultation, 1 hour", "order_id": "yk-1"}


async def paid_order(client, worker, yookassa, order_id: str) -> tuple[dict, str]:
    status, made = await post_order(client, {**ORDER, "order_id": order_id})
    assert status == 201
    answer, location = await press_pay(client, made)
    assert answer == 303
    [payment] = [p for p in yookassa.payments.values() if p["metadata"]["label"] == made["label"]]
    assert payment["amount"] == {"value": "500.00", "currency": "RUB"}
    assert payment["description"].startswith("Consultation, 1 hour")
    assert payment.get("save_payment_method") is not True, "a one-off payment saves nothing for later charges"
    assert await checkout(location) == 303
    await yookassa.settle()
    await worker.drain()
    return made, payment["id"]


async def refund(client, label: str, body: dict | None = None) -> tuple[int, dict]:
    response = await client.post(f"/api/invoices/{label}/refund", json=body, headers=AUTH)
    return response.status, await response.json()


def refund_requests(emulator) -> list[tuple[dict[str, str], dict]]:
    return [(headers, body) for method, path, headers, body in emulator.requests if (method, path) == ("POST",
                                                                                                        "/v3/refunds")]


async def test_an_order_paid_through_yookassa_is_paid_without_a_subscription(client, worker, yookassa, notifier):
    made, payment_id = await paid_order(client, worker, yookassa, "yk-paid")
    invoice = await Invoice.find_one(Invoice.label == made["label"])
    assert (invoice.status, invoice.provider, invoice.paid_amount) == (InvoiceStatus.PAID, "yookassa", 50000)
    assert await Subscription.find_one(Subscription.user_id == 91) is None
    [operation] = await operations()
    assert (operation.operation_id, operation.status) == (payment_id, OperationStatus.APPLIED)
    assert [notice.kind for notice in notifier.notices] == ["order"]


async def test_a_one_off_invoice_never_offers_pay_and_renew(client, settings, yookassa):
    status, made = await post_order(client, {**ORDER, "order_id": "yk-once"})
    page = await (await client.get(made["pay_url"].removeprefix(settings.public_base_url))).text()
    assert 'id="pay-yookassa"' in page and "choice-renew" not in page
    version = "en-0123456789abcdef"
    renew = await client.post(f"/pay/{made['label']}/choose", data={
        **link_fields(made["pay_url"]), "provider": "yookassa", "choice": "renew", "version": version,
        "consent_sig": consent_signature(settings.link_key, made["label"], "yookassa", version)},
        allow_redirects=False)
    assert renew.status == 409  # even a correctly signed consent form: nothing to renew
    assert (await Invoice.find_one(Invoice.label == made["label"])).auto_renew_consent is None
    assert yookassa.payments == {}


async def test_parts_are_refunded_once_each_and_the_last_makes_it_refunded(client, worker, yookassa, notifier):
    made, payment_id = await paid_order(client, worker, yookassa, "yk-parts")
    label = made["label"]
    status, first = await refund(client, label, {"amount": 10000, "refund_id": "r-1"})
    assert (status, first["refund"], first["status"], first["refunded_amount"]) == (202, "requested", "paid", 10000)
    [(headers, body)] = refund_requests(yookassa)
    assert body["amount"] == {"value": "100.00", "currency": "RUB"}
    assert headers["Idempotence-Key"] == idempotence_key("refund-part", f"yookassa:{payment_id}:r-1")
    again = await asyncio.gather(*(refund(client, label, {"amount": 10000, "refund_id": "r-1"}) for _ in range(4)))
    assert {status for status, _ in again} == {202} and {body["refunded_amount"] for _, body in again} == {10000}
    assert len(yookassa.refunds_of(payment_id)) == 1, "the same refund_id: the same refund at YooKassa"

    status, too_much = await refund(client, label, {"amount": 40001})
    assert (status, too_much["error"]) == (409, "refund_exceeds_payment")
    for bad in ({"amount": 0}, {"amount": -5}, {"amount": "100"}, {"amount": 10**40}, {"amount": True},
                {"refund_id": "a b"}, {"other": 1}):
        status, answer = await refund(client, label, bad)
        assert status in (400, 409), bad
    status, second = await refund(client, label, {"amount": 15000})
    assert (status, second["refunded_amount"]) == (202, 25000)
    await yookassa.settle()
    await worker.drain()
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.PAID
    assert notifier.reversals == []

    status, rest = await refund(client, label)  # no amount: what is left
    assert (status, rest["refunded_amount"]) == (202, 50000)
    assert refund_requests(yookassa)[-1][1]["amount"] == {"value": "250.00", "currency": "RUB"}
    await yookassa.settle()
    await worker.drain()
    _, shown = await get_json(client, f"/api/invoices/{label}")
    assert (shown["status"], shown["refunded_amount"]) == ("refunded", 50000)
    assert len(notifier.reversals) == 1 and len(yookassa.refunds_of(payment_id)) == 3
    status, answer = await refund(client, label, {"amount": 100})
    assert (status, answer["error"]) == (409, "not_paid")


async def test_a_pending_part_is_counted_when_it_succeeds(client, worker, yookassa, clock, notifier):
    made, payment_id = await paid_order(client, worker, yookassa, "yk-pending")
    yookassa.refund_status = "pending"
    yookassa.refund_timeline = RefundTimeline(settles_after=timedelta(hours=1))
    status, body = await refund(client, made["label"], {"amount": 20000})
    assert (status, body["refund"], body["refunded_amount"]) == (202, "pending", 0)
    yookassa.drop_deliveries()  # refund.succeeded lost: the scheduler's look-up finds it
    yookassa.clock.now += timedelta(hours=2)
    yookassa.refunds_due()
    clock.now += timedelta(seconds=POLL_DELAYS[-1])
    services = renewal_services(client.app[SETTINGS], client.app[QUEUES], client.app[PROVIDERS], clock)
    assert (await tick(clock(), services)).refund_checks == 1
    await worker.drain()
    invoice = await Invoice.find_one(Invoice.label == made["label"])
    assert (invoice.status, invoice.refunded_amount) == (InvoiceStatus.PAID, 20000)
    assert notifier.reversals == []
    assert yookassa.refunds_of(payment_id)[0]["amount"] == {"value": "200.00", "currency": "RUB"}
    assert Money(20000, "RUB") == Money(invoice.refunded_amount, "RUB")
