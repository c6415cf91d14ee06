"""YooKassa refunds: from the admin API (POST /refunds with a key per payment) and from YooKassa's
refund.succeeded notification; either way the payment is taken back exactly once, whichever comes first.
And `ymds simulate yookassa`, which pays, declines or refunds at the emulator and notifies as YooKassa does."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient

from billing.ledger import find_operation
from billing.money import Money
from billing.providers.base import ProviderRejected
from billing.providers.yookassa.protocol import idempotence_key
from db import ExtraRefund, Invoice, InvoiceStatus, OperationStatus, Subscription
from settings import ConfigError
from tests.conftest import AUTH
from tests.helpers import new_invoice, operations
from tests.yookassa_support import (
    paid_payment,
    paid_with_yoomoney,
    post_notification,
    provider_of,
    settings,
    yookassa,
    yookassa_emulator,
)
from webhook_server.emulators.yookassa import simulate

__all__ = ["settings", "yookassa", "yookassa_emulator"]  # fixtures, imported for pytest


async def paid(client: TestClient, worker, emulator, user_id: int) -> tuple[str, str]:
    invoice = await new_invoice(client, user_id=user_id)
    payment_id = paid_payment(emulator, invoice["label"])
    assert await post_notification(client, emulator.notification("payment.succeeded", payment_id)) == 200
    await worker.drain()
    return invoice["label"], payment_id


async def invoice_status(label: str) -> InvoiceStatus:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice.status


def refund_calls(emulator) -> list[tuple[dict[str, str], dict]]:
    return [(headers, body) for method, path, headers, body in emulator.requests if (method, path) == ("POST",
                                                                                                        "/v3/refunds")]


async def test_admin_refund_refunds_at_yookassa_and_takes_the_period_back_once(client, worker, yookassa, clock,
                                                                               notifier):
    label, payment_id = await paid(client, worker, yookassa, 31)
    response = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert response.status == 202
    [(headers, body)] = refund_calls(yookassa)
    assert headers["Idempotence-Key"] == idempotence_key("refund", payment_id)
    assert body == {"payment_id": payment_id, "amount": {"value": "299.00", "currency": "RUB"},
                    "description": f"Refund of invoice {label}"}
    await yookassa.settle()  # YooKassa's refund.succeeded reaches us as well
    await worker.drain()
    assert yookassa.deliveries[-1] == ("refund.succeeded", 200)
    assert await invoice_status(label) is InvoiceStatus.REFUNDED
    assert (await Subscription.find_one(Subscription.user_id == 31)).current_period_end == clock.now
    assert len(notifier.reversals) == 1
    assert (await client.post(f"/api/invoices/{label}/refund", headers=AUTH)).status == 409
    assert len(refund_calls(yookassa)) == 1


async def test_refund_made_in_the_yookassa_profile_takes_the_period_back(client, worker, yookassa, clock, notifier):
    label, payment_id = await paid(client, worker, yookassa, 32)
    refund = yookassa.refund(payment_id, Money(29900, "RUB"))
    body = yookassa.notification("refund.succeeded", refund["id"])
    assert await post_notification(client, body) == 200
    await worker.drain()
    assert await post_notification(client, body) == 200
    await worker.drain()
    assert await invoice_status(label) is InvoiceStatus.REFUNDED
    assert (await Subscription.find_one(Subscription.user_id == 32)).current_period_end == clock.now
    assert len(notifier.reversals) == 1
    response = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert response.status == 409 and refund_calls(yookassa) == []


async def test_concurrent_admin_refunds_and_the_notification_refund_once(client, worker, yookassa, clock, notifier):
    label, _ = await paid(client, worker, yookassa, 33)
    responses = await asyncio.gather(*(client.post(f"/api/invoices/{label}/refund", headers=AUTH) for _ in range(8)))
    assert {response.status for response in responses} == {202}, "the same key: YooKassa answers the same refund"
    await yookassa.settle()
    await worker.drain()
    assert len(yookassa.refunds) == 1 and ("refund.succeeded", 200) in yookassa.deliveries
    assert await invoice_status(label) is InvoiceStatus.REFUNDED
    assert (await Subscription.find_one(Subscription.user_id == 33)).current_period_end == clock.now
    assert len(notifier.reversals) == 1


async def test_partial_refund_keeps_the_subscription(client, worker, yookassa, clock, notifier):
    label, payment_id = await paid(client, worker, yookassa, 34)
    refund = yookassa.refund(payment_id, Money(10000, "RUB"))
    assert await post_notification(client, yookassa.notification("refund.succeeded", refund["id"])) == 200
    await worker.drain()
    assert await invoice_status(label) is InvoiceStatus.PAID and notifier.reversals == []
    rest = yookassa.refund(payment_id, Money(19900, "RUB"))
    assert await post_notification(client, yookassa.notification("refund.succeeded", rest["id"])) == 200
    await worker.drain()
    assert await invoice_status(label) is InvoiceStatus.REFUNDED and len(notifier.reversals) == 1
    assert (await Subscription.find_one(Subscription.user_id == 34)).current_period_end == clock.now


async def test_refund_of_a_payment_we_never_heard_of_records_it_then_takes_it_back(client, worker, yookassa, clock):
    invoice = await new_invoice(client, user_id=35)
    payment_id = paid_payment(yookassa, invoice["label"])  # its payment.succeeded never reached us
    refund = yookassa.refund(payment_id, Money(29900, "RUB"))
    assert await post_notification(client, yookassa.notification("refund.succeeded", refund["id"])) == 200
    await worker.drain()
    [operation] = await operations()
    assert (operation.operation_id, operation.status) == (payment_id, OperationStatus.REVERSED)
    assert await invoice_status(invoice["label"]) is InvoiceStatus.REFUNDED
    assert (await Subscription.find_one(Subscription.user_id == 35)).current_period_end == clock.now
    assert await post_notification(client, yookassa.notification("payment.succeeded", payment_id)) == 200
    await worker.drain()
    assert await invoice_status(invoice["label"]) is InvoiceStatus.REFUNDED, "the late payment.succeeded is a no-op"


async def test_refund_notification_the_api_contradicts_or_does_not_know_changes_nothing(client, worker, yookassa,
                                                                                       notifier):
    label, payment_id = await paid(client, worker, yookassa, 36)
    refund = yookassa.refund(payment_id, Money(29900, "RUB"))
    inflated = yookassa.notification("refund.succeeded", refund["id"])
    inflated["object"]["amount"] = {"value": "2990.00", "currency": "RUB"}
    assert await post_notification(client, inflated) == 409
    unknown = yookassa.notification("refund.succeeded", refund["id"])
    unknown["object"]["id"] = "2f6a1c3e-0015-5000-9000-000000000000"
    assert await post_notification(client, unknown) == 200
    yookassa.fail_with = 500
    assert await post_notification(client, yookassa.notification("refund.succeeded", refund["id"])) == 503
    await worker.drain()
    assert await invoice_status(label) is InvoiceStatus.PAID and notifier.reversals == []


async def test_refund_refused_or_unanswered_by_yookassa_changes_nothing(client, worker, yookassa, clock):
    label, _ = await paid(client, worker, yookassa, 37)
    yookassa.refund_status = "canceled"
    response = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert response.status == 502 and "rejected_by_payee" in (await response.json())["message"]
    yookassa.fail_with = 500
    assert (await client.post(f"/api/invoices/{label}/refund", headers=AUTH)).status == 503
    yookassa.fail_with = None
    yookassa.secret_key = "rotated"
    assert (await client.post(f"/api/invoices/{label}/refund", headers=AUTH)).status == 502
    await worker.drain()
    assert await invoice_status(label) is InvoiceStatus.PAID
    subscription = await Subscription.find_one(Subscription.user_id == 37)
    assert subscription.current_period_end == clock.now + timedelta(days=30)


async def test_pending_refund_is_answered_pending_and_takes_nothing_back_yet(client, worker, yookassa, clock):
    """YooKassa answers some refunds `pending`: nothing is reversed before it succeeds (the whole story is in
    tests/billing/test_pending_refunds.py)."""
    label, _ = await paid(client, worker, yookassa, 38)
    yookassa.refund_status = "pending"
    response = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert response.status == 202 and (await response.json())["refund"] == "pending"
    await worker.drain()
    assert await invoice_status(label) is InvoiceStatus.PAID


@pytest.mark.parametrize(("event", "status"), [("payment", InvoiceStatus.PAID), ("canceled", InvoiceStatus.PENDING),
                                               ("refund", InvoiceStatus.REFUNDED)])
async def test_simulate_sends_what_yookassa_would(client, worker, yookassa, settings, event, status):
    invoice = await new_invoice(client)
    base = str(client.make_url("")).rstrip("/")
    assert await simulate(settings, client.session, base, event, invoice["label"], None) == 200
    await worker.drain()
    assert await invoice_status(invoice["label"]) is status
    assert yookassa.payments, "the payment exists at the emulator, so our re-fetch confirms it"


async def test_simulate_underpaying_is_acknowledged_and_not_credited(client, worker, yookassa, settings):
    invoice = await new_invoice(client)
    base = str(client.make_url("")).rstrip("/")
    assert await simulate(settings, client.session, base, "payment", invoice["label"], "1.00") == 200
    await worker.drain()
    assert await invoice_status(invoice["label"]) is InvoiceStatus.PENDING
    with pytest.raises(ConfigError, match="amount"):
        await simulate(settings, client.session, base, "payment", invoice["label"], "1.5.0")


async def first_payer_pays(client, emulator, label: str, first: str) -> str:
    """The invoice is paid first, by YooMoney or by another YooKassa payment; returns that operation's key."""
    if first == "yoomoney":
        await paid_with_yoomoney(client, label)
        [operation] = await operations()
        return operation.key
    payment_id = paid_payment(emulator, label)
    assert await post_notification(client, emulator.notification("payment.succeeded", payment_id)) == 200
    return f"yookassa:{payment_id}"


@pytest.mark.parametrize("first", ["yoomoney", "yookassa"])
async def test_a_payment_for_an_invoice_already_paid_is_extra_and_refunded_once(client, worker, yookassa, clock,
                                                                                notifier, first):
    invoice = await new_invoice(client, user_id=39)
    label = invoice["label"]
    paid_by = await first_payer_pays(client, yookassa, label, first)
    second = paid_payment(yookassa, label)  # the payer paid again at YooKassa (another tab, a stale page)
    body = yookassa.notification("payment.succeeded", second)
    assert await post_notification(client, body) == 200, "the money is taken: YooKassa must stop redelivering"
    assert (await find_operation("yookassa", second)).status is OperationStatus.EXTRA
    await worker.drain()  # fulfils the first payment, settles the extra one through YooKassa's refund API
    [refund] = yookassa.refunds_of(second)
    assert (refund["status"], refund["amount"]) == ("succeeded", {"value": "299.00", "currency": "RUB"})
    [(headers, request)] = refund_calls(yookassa)
    assert headers["Idempotence-Key"] == idempotence_key("refund", second) and request["payment_id"] == second
    extra = await find_operation("yookassa", second)
    assert extra.extra_refund is ExtraRefund.REFUNDED and [notice.refunded for notice in notifier.extras] == [True]

    await yookassa.settle()  # YooKassa's refund.succeeded for the extra payment
    assert yookassa.deliveries[-1] == ("refund.succeeded", 200)
    assert await post_notification(client, body) == 200  # and a late redelivery of its payment.succeeded
    await worker.drain()
    invoice_now = await Invoice.find_one(Invoice.label == label)
    assert (invoice_now.status, invoice_now.paid_by) == (InvoiceStatus.PAID, paid_by), "the invoice is untouched"
    subscription = await Subscription.find_one(Subscription.user_id == 39)
    assert subscription.current_period_end == clock.now + timedelta(days=30), "one period, never taken back"
    assert notifier.reversals == [] and len(notifier.notices) == 1
    assert len(yookassa.refunds_of(second)) == 1 and len(refund_calls(yookassa)) == 1


async def test_refunding_the_extra_payment_again_refunds_nothing_more(client, yookassa):
    invoice = await new_invoice(client, user_id=40)
    await paid_with_yoomoney(client, invoice["label"])
    second = paid_payment(yookassa, invoice["label"])
    for _ in range(3):  # settle_extra run again after a crash: the same Idempotence-Key, the same refund
        await provider_of(client).refund(operation_id=second, amount=Money(29900, "RUB"), label=invoice["label"])
    assert len(yookassa.refunds_of(second)) == 1 and len(refund_calls(yookassa)) == 3


async def test_a_payment_refunded_in_full_in_the_profile_counts_as_refunded_and_a_partial_one_does_not(
        client, yookassa):
    invoice = await new_invoice(client, user_id=41)
    in_full, in_part = paid_payment(yookassa, invoice["label"]), paid_payment(yookassa, invoice["label"])
    yookassa.refund(in_full, Money(29900, "RUB"))  # by hand in the YooKassa profile, before settle_extra ran
    yookassa.refund(in_part, Money(10000, "RUB"))
    provider = provider_of(client)
    await provider.refund(operation_id=in_full, amount=Money(29900, "RUB"), label=invoice["label"])
    with pytest.raises(ProviderRejected, match="exceeds"):
        await provider.refund(operation_id=in_part, amount=Money(29900, "RUB"), label=invoice["label"])
    assert [len(yookassa.refunds_of(payment)) for payment in (in_full, in_part)] == [1, 1]
