"""check_payable: the pre-payment check multi-step providers answer from."""

from __future__ import annotations

from billing.ledger import check_payable
from billing.money import Money
from billing.providers.base import Outcome
from tests.helpers import new_invoice, notification, post_notification


async def test_check_payable_names_every_reason_to_refuse(client, worker):
    invoice = await new_invoice(client)
    label = invoice["label"]
    assert await check_payable(label, Money(3500000, "UZS")) is None
    assert await check_payable(label, Money(3500001, "UZS")) is None
    assert await check_payable(label, Money(3500001, "UZS"), exact=True) is Outcome.WRONG_AMOUNT
    assert await check_payable(label, Money(3499999, "UZS")) is Outcome.WRONG_AMOUNT
    assert await check_payable(label, Money(3500000, "USD")) is Outcome.WRONG_CURRENCY
    assert await check_payable("inv_none", Money(3500000, "UZS")) is Outcome.UNKNOWN_LABEL
    assert await check_payable("", Money(3500000, "UZS")) is Outcome.UNKNOWN_LABEL

    await post_notification(client, notification(label))
    await worker.drain()
    assert await check_payable(label, Money(3500000, "UZS")) is Outcome.ALREADY_PAID
    assert await check_payable(label, Money(1, "UZS")) is Outcome.ALREADY_PAID, "paid is said before a wrong amount"
