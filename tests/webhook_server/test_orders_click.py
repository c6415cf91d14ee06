"""An order paid through Click's SHOP-API (the emulator's signed Prepare and Complete), the amount compared exactly,
one invoice one payment. Click's only refund is a full reversal (click.md §6), which this release does not call:
a refund, whole or in part, is answered as one to make by hand."""

from __future__ import annotations

from db import Invoice, InvoiceStatus, Subscription
from tests.conftest import AUTH
from tests.webhook_server.test_notify_click import caller, settings
from tests.webhook_server.test_orders_api import post_order

__all__ = ["caller", "settings"]  # fixtures, imported for pytest

WRONG_AMOUNT = -2
ALREADY_PAID = -4


async def test_an_order_is_paid_through_click_for_its_exact_amount_once(client, worker, caller, notifier):
    status, made = await post_order(client, {"user_id": 97, "amounts": {"UZS": 9990000}, "description": "Tickets",
                                             "order_id": "click-1", "metadata": {"seats": "12A,12B"}})
    assert status == 201
    [short] = await caller.pay(made["label"], "99899.99")
    assert short.error == WRONG_AMOUNT
    prepared, completed = await caller.pay(made["label"], "99900.00")
    assert (prepared.error, completed.error) == (0, 0)
    await worker.drain()
    invoice = await Invoice.find_one(Invoice.label == made["label"])
    assert (invoice.status, invoice.provider, invoice.paid_amount) == (InvoiceStatus.PAID, "click", 9990000)
    assert invoice.metadata == {"seats": "12A,12B"}
    assert await Subscription.find_one(Subscription.user_id == 97) is None
    [again] = await caller.pay(made["label"], "99900.00")
    assert again.error == ALREADY_PAID
    assert [notice.kind for notice in notifier.notices] == ["order"]

    for body in ({"amount": 100000}, None):
        response = await client.post(f"/api/invoices/{made['label']}/refund", json=body, headers=AUTH)
        assert (response.status, (await response.json())["error"]) == (409, "refund_not_supported")
    assert (await Invoice.find_one(Invoice.label == made["label"])).status is InvoiceStatus.PAID
