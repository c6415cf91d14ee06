"""An order paid in the CloudPayments widget (the emulator's Check, then Pay, each compared exactly with the
invoice), and refunded in parts through /payments/refund."""

from __future__ import annotations

from billing.providers.cloudpayments.protocol import Kind
from db import InvoiceStatus, OperationStatus, Subscription
from tests.cloudpayments_support import CP_PUBLIC_ID, cp, cp_server, invoice_of, settings
from tests.conftest import AUTH
from tests.helpers import operations
from tests.webhook_server.test_orders_api import post_order

__all__ = ["cp", "cp_server", "settings"]  # fixtures, imported for pytest

ORDER = {"user_id": 93, "amounts": {"RUB": 75050}, "description": "Pack of 500 credits"}


async def pay_in_widget(cp, label: str, amount: str) -> dict:
    return await cp.pay_widget({"publicId": CP_PUBLIC_ID, "amount": amount, "currency": "RUB", "invoiceId": label,
                                "accountId": "93"}, "charge")


async def test_an_order_is_paid_in_the_widget_for_its_exact_amount_only(client, cp, worker, notifier):
    status, made = await post_order(client, {**ORDER, "order_id": "cp-1"})
    assert status == 201
    short = await pay_in_widget(cp, made["label"], "750.49")
    assert not short["success"], "Check refuses another amount: CloudPayments takes no money"
    assert [kind for kind, _ in cp.replies][-1] == Kind.CHECK and not cp.replies[-1][1].ok
    assert await operations() == []
    paid = await pay_in_widget(cp, made["label"], "750.50")
    assert paid["success"], paid
    await worker.drain()
    invoice = await invoice_of(made["label"])
    assert (invoice.status, invoice.provider, invoice.paid_amount) == (InvoiceStatus.PAID, "cloudpayments", 75050)
    assert await Subscription.find_one(Subscription.user_id == 93) is None
    [operation] = await operations()
    assert (operation.operation_id, operation.status) == (str(paid["transactionId"]), OperationStatus.APPLIED)
    again = await pay_in_widget(cp, made["label"], "750.50")
    assert not again["success"], "one invoice, one payment: Check refuses a paid invoice"
    assert [notice.kind for notice in notifier.notices] == ["order"]


async def test_parts_refunded_through_the_api_then_the_rest_reverses_it(client, cp, worker, notifier):
    status, made = await post_order(client, {**ORDER, "order_id": "cp-parts"})
    paid = await pay_in_widget(cp, made["label"], "750.50")
    await worker.drain()
    transaction = str(paid["transactionId"])

    response = await client.post(f"/api/invoices/{made['label']}/refund", json={"amount": 25050}, headers=AUTH)
    body = await response.json()
    assert (response.status, body["refunded_amount"], body["status"]) == (202, 25050, "paid")
    path, fields, _ = cp.api_calls[-1]
    assert (path, fields) == ("/payments/refund", {"TransactionId": transaction, "Amount": "250.50"})
    await worker.drain()  # CloudPayments' Refund notification of a part reverses nothing
    assert (await invoice_of(made["label"])).status is InvoiceStatus.PAID and notifier.reversals == []

    response = await client.post(f"/api/invoices/{made['label']}/refund", json={"amount": 50001}, headers=AUTH)
    assert response.status == 409 and (await response.json())["error"] == "refund_exceeds_payment"
    response = await client.post(f"/api/invoices/{made['label']}/refund", headers=AUTH)  # the rest
    assert response.status == 202 and (await response.json())["refunded_amount"] == 75050
    assert cp.api_calls[-1][1] == {"TransactionId": transaction, "Amount": "500.00"}
    await worker.drain()
    invoice = await invoice_of(made["label"])
    assert (invoice.status, invoice.refunded_amount) == (InvoiceStatus.REFUNDED, 75050)
    assert len(notifier.reversals) == 1
    assert len([call for call in cp.api_calls if call[0] == "/payments/refund"]) == 2
