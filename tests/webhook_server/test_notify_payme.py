"""POST /notify/payme through real HTTP, the real Redis and a real RQ worker, driven by the Payme emulator."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from billing.providers.payme.protocol import to_ms
from db import Invoice, InvoiceStatus, OperationStatus, Subscription, SubscriptionStatus
from db.payme import PaymeState
from tests.helpers import get_json, new_invoice, notification, operations, post_notification
from tests.payme_support import (  # noqa: F401 - fixtures
    PRICE_MONTH_UZS,
    error_code,
    payme,
    settings,
    transactions,
)
from webhook_server.emulators.payme import new_payme_id

TWELVE_HOURS = timedelta(milliseconds=43_200_000)


async def invoice_of(label: str) -> Invoice:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice


async def test_payment_activates_the_subscription(client, worker, clock, queues, notifier, payme):
    invoice = await new_invoice(client, user_id=7)
    payme_id, answers = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)

    assert [a.method for a in answers] == ["CheckPerformTransaction", "CreateTransaction", "PerformTransaction"]
    assert all(a.status == 200 and a.result for a in answers), [a.body for a in answers]
    perform = answers[-1].result
    assert perform == {"transaction": perform["transaction"], "perform_time": to_ms(clock.now), "state": 2}
    assert await worker.drain()

    status, body = await get_json(client, f"/api/invoices/{invoice['label']}")
    assert (body["status"], body["provider"], body["paid_amount"], body["paid_currency"]) == (
        "paid", "payme", PRICE_MONTH_UZS, "UZS")
    _, sub = await get_json(client, "/api/users/7/subscription")
    assert sub["status"] == "active" and sub["current_period_end"] == (clock.now + timedelta(days=30)).isoformat()
    [operation] = await operations()
    assert (operation.provider, operation.operation_id) == ("payme", payme_id)
    assert operation.status is OperationStatus.APPLIED
    assert [n.user_id for n in notifier.notices] == [7]
    assert queues.depth() == 0


async def test_perform_answers_are_identical_and_activate_once(client, worker, clock, notifier, payme):
    invoice = await new_invoice(client, user_id=8)
    payme_id, answers = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    clock.now += timedelta(minutes=5)
    again = await payme.by_id(client.session, "PerformTransaction", payme_id)
    await worker.drain()
    assert again.result == answers[-1].result, "a repeat answers the stored perform_time, not a new one"
    check = await payme.by_id(client.session, "CheckTransaction", payme_id)
    assert check.result["perform_time"] == answers[-1].result["perform_time"]
    assert len(await operations()) == 1 and len(notifier.notices) == 1


async def test_24_concurrent_performs_activate_exactly_once(client, worker, clock, queues, notifier, payme):
    invoice = await new_invoice(client, user_id=9)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)

    answers = await asyncio.gather(*(payme.by_id(client.session, "PerformTransaction", payme_id) for _ in range(24)))
    assert all(a.status == 200 and a.result for a in answers), {str(a.body) for a in answers}
    assert len({str(a.result) for a in answers}) == 1
    assert queues.depth() == 1
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 9)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(await operations()) == 1 and len(notifier.notices) == 1


async def test_24_concurrent_creates_with_different_ids_leave_one_waiting(client, payme):
    invoice = await new_invoice(client)
    answers = await asyncio.gather(*(payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS)
                                     for _ in range(24)))
    assert sorted(error_code(a) or 0 for a in answers) == [-31008] * 23 + [0]
    assert len(await transactions()) == 1


async def test_24_concurrent_identical_creates_answer_the_same(client, payme):
    invoice = await new_invoice(client)
    payme_id, payme_time = new_payme_id(), payme.clock()
    answers = await asyncio.gather(*(payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS,
                                                  payme_time) for _ in range(24)))
    assert all(a.result for a in answers) and len({str(a.result) for a in answers}) == 1
    assert len(await transactions()) == 1


async def test_perform_after_12_hours_cancels_with_reason_4(client, worker, clock, payme):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    clock.now += TWELVE_HOURS + timedelta(milliseconds=1)

    assert error_code(await payme.by_id(client.session, "PerformTransaction", payme_id)) == -31008
    check = await payme.by_id(client.session, "CheckTransaction", payme_id)
    assert (check.result["state"], check.result["reason"], check.result["cancel_time"]) == (-1, 4, to_ms(clock.now))
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING
    assert await operations() == []
    fresh = await payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS)
    assert fresh.result and fresh.result["state"] == 1, "the timed-out transaction released the invoice"


async def test_perform_at_exactly_12_hours_still_succeeds(client, clock, payme):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    clock.now += TWELVE_HOURS
    assert (await payme.by_id(client.session, "PerformTransaction", payme_id)).result["state"] == 2


async def test_timeout_is_measured_from_paymes_time(client, clock, payme):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    older = to_ms(clock.now) - 60_000  # Payme created it a minute before it reached us
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS, payme_time=older)
    clock.now += TWELVE_HOURS - timedelta(seconds=30)
    assert error_code(await payme.by_id(client.session, "PerformTransaction", payme_id)) == -31008


async def test_repeated_create_after_12_hours_cancels_with_reason_4(client, clock, payme):
    invoice = await new_invoice(client)
    payme_id, payme_time = new_payme_id(), payme.clock()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS, payme_time)
    clock.now += TWELVE_HOURS + timedelta(milliseconds=1)
    again = await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS, payme_time)
    assert error_code(again) == -31008
    [tx] = await transactions()
    assert (tx.state, tx.reason) == (PaymeState.CANCELLED, 4)


async def test_a_waiting_transaction_past_12_hours_no_longer_holds_the_invoice(client, clock, payme):
    invoice = await new_invoice(client)
    stale_id = new_payme_id()
    await payme.create(client.session, stale_id, invoice["label"], PRICE_MONTH_UZS)
    clock.now += TWELVE_HOURS + timedelta(milliseconds=1)

    assert (await payme.check(client.session, invoice["label"], PRICE_MONTH_UZS)).result == {"allow": True}
    assert [tx.state for tx in await transactions()] == [PaymeState.CREATED], "Check changes nothing"
    fresh = await payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS)
    assert fresh.result["state"] == 1
    stale = await payme.by_id(client.session, "CheckTransaction", stale_id)
    assert (stale.result["state"], stale.result["reason"]) == (-1, 4)


async def test_create_older_than_12_hours_is_refused_and_stores_nothing(client, clock, payme):
    invoice = await new_invoice(client)
    stale = to_ms(clock.now) - 43_200_001
    answer = await payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS, payme_time=stale)
    assert error_code(answer) == -31008 and answer.body["error"]["data"] == "time"
    assert await transactions() == []


async def test_cancel_of_a_waiting_transaction_frees_the_invoice(client, worker, clock, payme):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    created = await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    clock.now += timedelta(seconds=3)
    cancel = await payme.by_id(client.session, "CancelTransaction", payme_id, reason=3)
    assert cancel.result == {"transaction": created.result["transaction"], "cancel_time": to_ms(clock.now),
                             "state": -1}
    assert error_code(await payme.by_id(client.session, "PerformTransaction", payme_id)) == -31008
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING
    assert (await payme.check(client.session, invoice["label"], PRICE_MONTH_UZS)).result == {"allow": True}


async def test_cancel_after_perform_reverses_the_payment_once(client, worker, clock, notifier, payme):
    invoice = await new_invoice(client, user_id=31)
    payme_id, _ = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    await worker.drain()
    clock.now += timedelta(days=2)

    cancel = await payme.by_id(client.session, "CancelTransaction", payme_id, reason=5)
    assert cancel.result["state"] == -2 and cancel.result["cancel_time"] == to_ms(clock.now)
    await worker.drain()
    again = await payme.by_id(client.session, "CancelTransaction", payme_id, reason=5)
    await worker.drain()

    assert again.result == cancel.result
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.REFUNDED
    subscription = await Subscription.find_one(Subscription.user_id == 31)
    assert subscription.status is SubscriptionStatus.EXPIRED
    assert subscription.current_period_end == clock.now - timedelta(days=2)
    [operation] = await operations()
    assert operation.status is OperationStatus.REVERSED
    assert [(n.user_id, "refund" in n.reason) for n in notifier.reversals] == [(31, True)]
    check = await payme.by_id(client.session, "CheckTransaction", payme_id)
    assert (check.result["state"], check.result["reason"]) == (-2, 5)


async def test_money_from_another_provider_while_payme_holds_the_invoice_is_extra(client, worker, payme):
    """A waiting Payme transaction holds the invoice: a YooMoney transfer (which cannot be refused) that
    arrives meanwhile is kept as extra, and Payme's Perform still pays the invoice."""
    invoice = await new_invoice(client, user_id=32)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    assert await post_notification(client, notification(invoice["label"])) == 200
    await worker.drain()

    assert (await payme.by_id(client.session, "PerformTransaction", payme_id)).result["state"] == 2
    await worker.drain()
    assert {op.provider: op.status for op in await operations()} == {
        "yoomoney": OperationStatus.EXTRA, "payme": OperationStatus.APPLIED}
    assert (await invoice_of(invoice["label"])).paid_by == f"payme:{payme_id}"


async def test_unknown_transaction_gets_31003(client, payme):
    for method in ("PerformTransaction", "CancelTransaction", "CheckTransaction"):
        answer = await payme.by_id(client.session, method, new_payme_id(), reason=1)
        assert (answer.status, error_code(answer)) == (200, -31003), method


async def test_paid_invoice_gets_31051_with_the_field_name(client, worker, payme):
    invoice = await new_invoice(client)
    await post_notification(client, notification(invoice["label"]))
    await worker.drain()
    answer = await payme.check(client.session, invoice["label"], PRICE_MONTH_UZS)
    assert error_code(answer) == -31051 and payme.account_error(answer)


async def test_expired_invoice_gets_31052(client, clock, payme):
    invoice = await new_invoice(client)
    clock.now += timedelta(days=2)
    answer = await payme.check(client.session, invoice["label"], PRICE_MONTH_UZS)
    assert error_code(answer) == -31052 and payme.account_error(answer)


async def test_invoice_without_a_uzs_price_gets_31053(client, payme):
    invoice = await new_invoice(client)
    await Invoice.get_motor_collection().update_one({"label": invoice["label"]}, {"$unset": {"amounts.UZS": ""}})
    answer = await payme.check(client.session, invoice["label"], PRICE_MONTH_UZS)
    assert error_code(answer) == -31053 and payme.account_error(answer)


async def test_a_performed_transaction_keeps_the_order_busy(client, worker, payme):
    invoice = await new_invoice(client)
    await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    answer = await payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS)
    assert error_code(answer) == -31008
    await worker.drain()
    assert error_code(await payme.check(client.session, invoice["label"], PRICE_MONTH_UZS)) == -31008
