"""reverse_payment through real RQ: once, crash-safe, and safe against a fulfilment it overtakes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry

from billing.reversal import REVERSAL_STEPS, reverse_payment
from db import Invoice, InvoiceStatus, OperationStatus, Subscription, SubscriptionStatus
from tests.billing.test_fulfilment import crash_at
from tests.helpers import new_invoice, notification, operations, post_notification


async def paid_invoice(client, worker, user_id: int, operation_id: str) -> dict:
    invoice = await new_invoice(client, user_id=user_id)
    await post_notification(client, notification(invoice["label"], operation_id=operation_id))
    await worker.drain()
    return invoice


async def state(label: str, user_id: int):
    invoice = await Invoice.find_one(Invoice.label == label)
    subscription = await Subscription.find_one(Subscription.user_id == user_id)
    return invoice.status, subscription.current_period_end, subscription.status


async def test_reversal_takes_the_period_back_once_and_tells_the_user(client, worker, queues, clock, notifier):
    first = await paid_invoice(client, worker, 51, "701")
    await paid_invoice(client, worker, 51, "702")

    await queues.enqueue_reversal("yoomoney", "701", "refund")
    await queues.enqueue_reversal("yoomoney", "701", "refund")
    await worker.drain()
    await queues.enqueue_reversal("yoomoney", "701", "refund again")
    await worker.drain()

    status, end, sub_status = await state(first["label"], 51)
    assert status is InvoiceStatus.REFUNDED
    assert end == clock.now + timedelta(days=30), "one of the two periods remains"
    assert sub_status is SubscriptionStatus.ACTIVE
    assert [(n.user_id, n.reason) for n in notifier.reversals] == [(51, "refund")]


async def test_reversing_the_only_payment_expires_the_subscription(client, worker, queues, clock):
    invoice = await paid_invoice(client, worker, 52, "801")
    clock.now += timedelta(days=3)
    await queues.enqueue_reversal("yoomoney", "801", "cancelled by provider")
    await worker.drain()
    status, end, sub_status = await state(invoice["label"], 52)
    assert (status, sub_status) == (InvoiceStatus.REFUNDED, SubscriptionStatus.EXPIRED)
    assert end == clock.now - timedelta(days=3)


@pytest.mark.parametrize("step", REVERSAL_STEPS)
async def test_crash_during_reversal_then_rerun_ends_as_if_no_crash(step, client, worker, queues, clock, notifier):
    invoice = await paid_invoice(client, worker, 53, "901")
    worker.runtime.checkpoint = crash_at(step)
    await queues.enqueue_reversal("yoomoney", "901", "refund")
    await worker.drain()
    worker.runtime.checkpoint = lambda reached: None
    failed = FailedJobRegistry(queue=queues.fulfilment)
    assert len(failed) == 1
    Job.fetch(failed.get_job_ids()[0], connection=queues.connection).requeue()
    await worker.drain()

    status, end, sub_status = await state(invoice["label"], 53)
    assert (status, sub_status) == (InvoiceStatus.REFUNDED, SubscriptionStatus.EXPIRED)
    assert end == clock.now
    assert len(notifier.reversals) == 1


async def test_reversal_before_fulfilment_means_it_is_never_applied(client, worker, queues, notifier):
    invoice = await new_invoice(client, user_id=54)
    await post_notification(client, notification(invoice["label"], operation_id="1001"))
    assert await reverse_payment("yoomoney", "1001", reason="cancelled", notices=queues)
    await worker.drain()

    stored = await Invoice.find_one(Invoice.label == invoice["label"])
    assert stored.status is InvoiceStatus.PENDING
    assert await Subscription.find_one(Subscription.user_id == 54) is None
    [operation] = await operations()
    assert operation.status is OperationStatus.REVERSED and notifier.reversals == []


async def test_reversal_overtaking_a_crashed_fulfilment_leaves_nothing_applied(client, worker, queues, clock):
    invoice = await new_invoice(client, user_id=55)
    await post_notification(client, notification(invoice["label"], operation_id="1101"))
    worker.runtime.checkpoint = crash_at("after_subscription_update")
    await worker.drain()
    worker.runtime.checkpoint = lambda reached: None

    await queues.enqueue_reversal("yoomoney", "1101", "cancelled")
    await worker.drain()
    FailedJobRegistry(queue=queues.fulfilment).requeue(
        FailedJobRegistry(queue=queues.fulfilment).get_job_ids()[0])
    await worker.drain()

    status, end, sub_status = await state(invoice["label"], 55)
    assert (status, sub_status) == (InvoiceStatus.REFUNDED, SubscriptionStatus.EXPIRED)
    assert end == clock.now
