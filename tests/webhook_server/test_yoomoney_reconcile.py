"""YooMoney when notifications fail: the wallet API down, every notification dropped, redeliveries given up,
transfers held in progress then credited or refused. Through real HTTP to our app, the emulator as a real HTTP
server (its wallet API included), the real Redis and a real RQ worker; provider.reconcile is the sweep's step."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.sweep import reconcilers, sweep_once
from db import Invoice, OperationStatus, Subscription
from tests.helpers import PRICE_MONTH_RUB, get_json, new_invoice, operations
from webhook_server.keys import LEDGER, PROVIDERS

WINDOW = timedelta(hours=72)


@pytest.fixture
def emulator(yoomoney_emulator, clock):
    """The emulator on the app's clock, so that its history and our sweep window agree."""
    emulator, _ = yoomoney_emulator
    emulator.clock = clock
    return emulator


async def reconcile(client, clock):
    provider = client.app[PROVIDERS].get("yoomoney")
    return await provider.reconcile(clock.now - WINDOW, clock.now + timedelta(seconds=1), ledger=client.app[LEDGER],
                                    now=clock.now)


async def subscription_status(client, user_id: int) -> str:
    status, body = await get_json(client, f"/api/users/{user_id}/subscription")
    return body["status"] if status == 200 else "none"


async def invoice_of(label: str) -> Invoice:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice


async def test_wallet_api_down_keeps_it_unverified_and_the_sweep_confirms_it(client, worker, emulator, clock):
    invoice = await new_invoice(client, user_id=80)
    emulator.api_available = False
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB)
    assert emulator.deliveries == [200], "kept as unverified is answered 200: YooMoney must not give up on us"
    [row] = await operations()
    assert (row.operation_id, row.status) == (operation.operation_id, OperationStatus.UNVERIFIED)
    await worker.drain()
    assert await subscription_status(client, 80) == "none"

    emulator.api_available = True
    clock.now += timedelta(minutes=5)
    report = await reconcile(client, clock)
    await worker.drain()
    assert await subscription_status(client, 80) == "active"
    assert (report.found, report.recorded) == (1, 1)
    assert [(r.operation_id, r.status) for r in await operations()] == [(operation.operation_id,
                                                                          OperationStatus.APPLIED)]


async def test_every_notification_dropped_the_sweep_pays_and_a_late_delivery_is_a_duplicate(
        client, worker, emulator, clock, notifier):
    invoice = await new_invoice(client, user_id=81)
    emulator.drop_notifications = True
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB)
    assert emulator.deliveries == [] and await operations() == []

    clock.now += timedelta(minutes=3)
    [report] = await sweep_once(reconcilers(client.app[PROVIDERS]), client.app[LEDGER], start=clock.now - WINDOW,
                                end=clock.now, now=clock.now)
    await worker.drain()
    assert (report.provider, report.found, report.recorded) == ("yoomoney", 1, 1)
    assert await subscription_status(client, 81) == "active"
    subscription = await Subscription.find_one(Subscription.user_id == 81)
    [row] = await operations()
    assert (row.operation_id, row.amount, row.net_amount) == (operation.operation_id, 29901, 29003)

    assert await emulator.deliver_late(operation.operation_id) == 200
    await worker.drain()
    again = await Subscription.find_one(Subscription.user_id == 81)
    assert again.current_period_end == subscription.current_period_end
    assert len(await operations()) == 1 and len(notifier.notices) == 1
    assert (await reconcile(client, clock)).recorded == 0, "a second sweep finds nothing new"


async def test_redeliveries_give_up_after_an_hour_and_the_sweep_still_pays(client, worker, emulator, clock):
    invoice = await new_invoice(client, user_id=82)
    emulator.notify_url = str(client.make_url("/notify/yoomoney-typo"))  # a misconfigured notification URL
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB)
    assert await emulator.advance(timedelta(minutes=10)) == [404]
    assert await emulator.advance(timedelta(minutes=50)) == [404]
    assert await emulator.advance(timedelta(days=1)) == []
    assert emulator.deliveries == [404, 404, 404] and emulator.given_up() == [operation.operation_id]

    await reconcile(client, clock)
    await worker.drain()
    assert await subscription_status(client, 82) == "active"


async def test_a_held_transfer_is_polled_until_credited_then_paid(client, worker, emulator, clock, notifier):
    invoice = await new_invoice(client, user_id=83)
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB, payment_type="PC", codepro=True)
    await worker.drain()
    [row] = await operations()
    assert row.status is OperationStatus.HELD and [h.label for h in notifier.holds] == [invoice["label"]]

    clock.now += timedelta(minutes=5)
    await reconcile(client, clock)
    await worker.drain()
    assert (await operations())[0].status is OperationStatus.HELD, "still in progress in the wallet"
    assert await subscription_status(client, 83) == "none"

    emulator.accept(operation.operation_id)
    clock.now += timedelta(minutes=5)
    await reconcile(client, clock)
    await worker.drain()
    assert await subscription_status(client, 83) == "active"
    [row] = await operations()
    assert (row.operation_id, row.status) == (operation.operation_id, OperationStatus.APPLIED)
    assert len(notifier.holds) == 1 and [n.user_id for n in notifier.notices] == [83]


async def test_a_held_transfer_the_wallet_refuses_is_reversed_and_everyone_told(
        client, worker, emulator, clock, notifier):
    invoice = await new_invoice(client, user_id=84)
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB, unaccepted=True)
    await worker.drain()
    assert (await operations())[0].status is OperationStatus.HELD
    assert (await invoice_of(invoice["label"])).claimed_by == f"yoomoney:{operation.operation_id}"

    emulator.refuse(operation.operation_id)
    await reconcile(client, clock)
    await worker.drain()
    [row] = await operations()
    assert row.status is OperationStatus.REVERSED
    refreshed = await invoice_of(invoice["label"])
    assert refreshed.status.value == "pending" and refreshed.claimed_by is None, "the invoice can be paid again"
    assert [(n.user_id, n.label) for n in notifier.reversals] == [(84, invoice["label"])]
    assert await subscription_status(client, 84) == "none"


async def test_a_payment_in_progress_found_only_by_the_sweep_is_recorded_held(client, worker, emulator, clock):
    invoice = await new_invoice(client, user_id=85)
    emulator.drop_notifications = True
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB, unaccepted=True)
    await reconcile(client, clock)
    await worker.drain()
    [row] = await operations()
    assert (row.operation_id, row.status) == (operation.operation_id, OperationStatus.HELD)
    emulator.accept(operation.operation_id)
    await reconcile(client, clock)
    await worker.drain()
    assert await subscription_status(client, 85) == "active"


async def test_the_sweep_records_only_our_invoices_and_only_inside_its_window(client, worker, emulator, clock):
    ours = await new_invoice(client, user_id=86)
    emulator.drop_notifications = True
    await emulator.pay("", 50000)  # a direct transfer without a label: never matched by amount
    await emulator.pay("someone-elses-label", PRICE_MONTH_RUB)
    clock.now += WINDOW + timedelta(hours=1)
    await emulator.pay(ours["label"], PRICE_MONTH_RUB)  # before the window below
    clock.now += timedelta(hours=1)
    provider = client.app[PROVIDERS].get("yoomoney")
    report = await provider.reconcile(clock.now - timedelta(minutes=30), clock.now, ledger=client.app[LEDGER],
                                      now=clock.now)
    assert (report.found, report.recorded) == (0, 0) and await operations() == []
    report = await reconcile(client, clock)
    assert (report.found, report.recorded) == (1, 1)
    assert [row.label for row in await operations()] == [ours["label"]]


async def test_an_unverified_notification_the_wallet_does_not_know_is_dismissed_by_the_sweep(
        client, worker, emulator, clock):
    from tests.helpers import notification, post_notification

    invoice = await new_invoice(client, user_id=87)
    emulator.api_available = False
    assert await post_notification(client, notification(invoice["label"], signed=False)) == 200
    emulator.api_available = True
    await reconcile(client, clock)
    [row] = await operations()
    assert row.status is OperationStatus.REJECTED and row.reason == "the wallet has no such operation"
    assert (await invoice_of(invoice["label"])).status.value == "pending"
