"""Nothing lost when every YooKassa notification is lost: the sweep (YooKassa.reconcile) asks the API about
the payments we still hold as open and lists the period's succeeded payments, records what it finds under the
payment id the notification path uses, and a late delivery is then a duplicate that changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.errors import ProviderUnavailable
from billing.sweep import reconcilers, sweep_once
from db import Invoice, InvoiceStatus, OperationStatus, Subscription
from db.yookassa import YooKassaPayment, attempts
from tests.consent_support import choose
from tests.helpers import new_invoice, operations
from tests.yookassa_support import (
    checkout,
    created_payment,
    paid_payment,
    press_pay,
    provider_of,
    settings,
    yookassa,
    yookassa_clock,
    yookassa_emulator,
)
from webhook_server.keys import LEDGER, PROVIDERS

__all__ = ["settings", "yookassa", "yookassa_emulator"]  # fixtures, imported for pytest

WINDOW = timedelta(hours=24)


async def sweep(client, clock):
    """One reconciliation of YooKassa over the last 24 hours, as `ymds scheduler` runs it."""
    return await provider_of(client).reconcile(clock.now - WINDOW, clock.now + timedelta(minutes=1),
                                               ledger=client.app[LEDGER], now=clock.now)


async def period_end(user_id: int):
    subscription = await Subscription.find_one(Subscription.user_id == user_id)
    return subscription.current_period_end if subscription else None


async def test_every_notification_dropped_the_sweep_activates_and_the_late_delivery_is_a_duplicate(
        client, worker, yookassa, clock, notifier):
    invoice = await new_invoice(client, user_id=51)
    yookassa.drop_deliveries()  # an outage between YooKassa and us: every delivery is lost
    _, confirmation = await choose(client, invoice, "yookassa")  # pay and renew: the card is saved
    assert await checkout(confirmation) == 303, "YooKassa sends the payer back whatever the shop answered"
    [payment_id] = yookassa.payments
    assert yookassa.deliveries == [] and yookassa.outbox.dropped == [("payment.succeeded", payment_id)]
    await worker.drain()
    assert await operations() == [] and await period_end(51) is None

    report = await sweep(client, clock)
    assert (report.found, report.recorded, report.asked) == (1, 1, 2), "one payment fetched, one list page"
    await worker.drain()
    assert await period_end(51) == clock.now + timedelta(days=30) and len(notifier.notices) == 1
    [operation] = await operations()
    assert (operation.operation_id, operation.status) == (payment_id, OperationStatus.APPLIED)
    assert operation.payment_token == payment_id, "recorded by the same event builder: the saved card too"
    [record] = await attempts(invoice["label"])
    assert record.status.value == "succeeded"

    yookassa.deliver_again()  # the outage is over; YooKassa's next attempt on its own clock
    yookassa_clock(yookassa).now += timedelta(minutes=1)
    assert await yookassa.redeliver_due() == 1
    assert yookassa.deliveries == [("payment.succeeded", 200)] and yookassa.outbox.waiting == []
    await worker.drain()
    assert await period_end(51) == clock.now + timedelta(days=30) and len(notifier.notices) == 1
    assert [op.status for op in await operations()] == [OperationStatus.APPLIED]
    again = await sweep(client, clock)
    assert (again.found, again.recorded) == (1, 0), "a second sweep finds it again and records nothing"


async def test_a_payment_whose_create_answer_was_lost_is_found_in_the_payments_list(client, worker, yookassa,
                                                                                   clock):
    invoice = await new_invoice(client, user_id=52)
    _, confirmation = await press_pay(client, invoice)
    await YooKassaPayment.get_motor_collection().update_many(  # our process died before it saved the answer
        {}, {"$set": {"status": "creating", "payment_id": None, "confirmation_url": None}})
    yookassa.drop_deliveries()
    assert await checkout(confirmation) == 303
    report = await sweep(client, clock)
    assert (report.found, report.recorded, report.asked) == (1, 1, 1), "only the list could know it"
    await worker.drain()
    assert await period_end(52) == clock.now + timedelta(days=30)


async def test_the_sweep_pages_through_the_list_and_skips_payments_of_other_systems(client, worker, yookassa,
                                                                                    clock):
    invoice = await new_invoice(client, user_id=53)
    emulator_clock = yookassa_clock(yookassa)
    ours = paid_payment(yookassa, invoice["label"])  # the oldest: on the last page, newest first
    for n in range(120):  # the same shop also serves another system, whose labels are not our invoices
        emulator_clock.now += timedelta(milliseconds=100)
        paid_payment(yookassa, f"other-system-{n}")
    report = await sweep(client, clock)
    assert (report.found, report.recorded, report.asked) == (1, 1, 2), "two pages of at most 100"
    [operation] = await operations()
    assert operation.operation_id == ours
    lists = [path for method, path, _, _ in yookassa.requests if (method, path) == ("GET", "/v3/payments")]
    assert len(lists) == 2


async def test_an_open_payment_the_payer_declined_is_recorded_canceled_and_the_invoice_stays_payable(
        client, worker, yookassa, clock):
    invoice = await new_invoice(client, user_id=54)
    yookassa.drop_deliveries()
    _, confirmation = await press_pay(client, invoice)
    assert await checkout(confirmation, "decline") == 303
    report = await sweep(client, clock)
    assert (report.found, report.recorded) == (0, 0) and report.lines[0].endswith(": canceled")
    [record] = await attempts(invoice["label"])
    assert (record.status.value, record.cancel_party, record.cancel_reason) == (
        "canceled", "payment_network", "insufficient_funds")
    assert await operations() == []
    assert (await Invoice.find_one(Invoice.label == invoice["label"])).status is InvoiceStatus.PENDING
    status, again = await press_pay(client, invoice)
    assert status == 303 and again != confirmation, "a new payment for the next try"


async def test_a_payment_yookassa_no_longer_has_is_closed_and_not_asked_again(client, yookassa, clock):
    invoice = await new_invoice(client, user_id=55)
    await press_pay(client, invoice)
    yookassa.payments.clear()  # e.g. the shop's keys were switched from the test shop to the live one
    report = await sweep(client, clock)
    assert report.asked == 2 and "no such payment" in report.lines[0]
    [record] = await attempts(invoice["label"])
    assert record.status.value == "canceled"
    assert (await sweep(client, clock)).asked == 1, "only the list this time"


async def test_api_down_makes_the_sweep_skip_yookassa_until_the_next_time(client, worker, yookassa, clock):
    invoice = await new_invoice(client, user_id=56)
    paid_payment(yookassa, invoice["label"])
    yookassa.fail_with = 500
    with pytest.raises(ProviderUnavailable):
        await sweep(client, clock)
    assert provider_of(client) in reconcilers(client.app[PROVIDERS]), "the scheduler asks YooKassa"
    ledger, asked = client.app[LEDGER], [provider_of(client)]
    window = {"start": clock.now - WINDOW, "end": clock.now + timedelta(minutes=1), "now": clock.now}
    assert await sweep_once(asked, ledger, **window) == [], "skipped this time"
    assert await operations() == []
    yookassa.fail_with = None
    reports = await sweep_once(asked, ledger, **window)
    assert [(report.provider, report.recorded) for report in reports] == [("yookassa", 1)]
    await worker.drain()
    assert await period_end(56) == clock.now + timedelta(days=30)


async def test_a_payment_in_the_other_mode_is_reported_not_recorded(client, yookassa, clock):
    invoice = await new_invoice(client, user_id=57)
    yookassa.test = False  # a live payment seen by a server configured for the test shop
    paid_payment(yookassa, invoice["label"])
    report = await sweep(client, clock)
    assert (report.found, report.recorded) == (0, 0) and "YOOKASSA_TEST_MODE" in report.lines[0]
    assert await operations() == []


async def test_a_pending_payment_stays_open_for_the_next_sweep(client, yookassa, clock):
    invoice = await new_invoice(client, user_id=58)
    await press_pay(client, invoice)
    created_payment(yookassa, "other-system-pending")
    report = await sweep(client, clock)
    assert (report.found, report.lines) == (0, [f"{next(iter(yookassa.payments))} for {invoice['label']}: pending"])
    assert (await sweep(client, clock)).asked == 2
