"""Crash safety of fulfilment: a failure at every step boundary, then the job run again as RQ would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry

from billing.fulfilment import STEPS
from db import Invoice, OperationStatus, Subscription
from tests.helpers import new_invoice, notification, operations, post_notification
from tests.webhook_server.test_orders_api import ORDER, post_order


class Crash(RuntimeError):
    pass


def crash_at(step: str):
    def checkpoint(reached: str) -> None:
        if reached == step:
            raise Crash(step)

    return checkpoint


@pytest.mark.parametrize("step", STEPS)
async def test_crash_at_any_step_then_rerun_ends_as_if_no_crash(step, client, worker, queues, clock, notifier):
    invoice = await new_invoice(client, user_id=21)
    assert await post_notification(client, notification(invoice["label"])) == 200

    worker.runtime.checkpoint = crash_at(step)
    await worker.drain()
    failed = FailedJobRegistry(queue=queues.fulfilment)
    assert len(failed) == 1, "the crashed job stays failed until it is run again"

    worker.runtime.checkpoint = lambda reached: None
    Job.fetch(failed.get_job_ids()[0], connection=queues.connection).requeue()
    await worker.drain()

    stored = await Invoice.find_one(Invoice.label == invoice["label"])
    assert stored.status.value == "paid"
    subscription = await Subscription.find_one(Subscription.user_id == 21)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(subscription.applied_operations) == 1
    [operation] = await operations()
    assert operation.status is OperationStatus.APPLIED and operation.notified_at is not None
    assert len(notifier.notices) == 1


@pytest.mark.parametrize("step", STEPS)
async def test_crash_then_provider_redelivery_also_finishes_the_work(step, client, worker, queues, clock, notifier):
    """The provider's retry (not RQ's) arrives after the crash: the recorded row is enqueued again."""
    invoice = await new_invoice(client, user_id=22)
    fields = notification(invoice["label"])
    assert await post_notification(client, fields) == 200
    worker.runtime.checkpoint = crash_at(step)
    await worker.drain()

    worker.runtime.checkpoint = lambda reached: None
    assert await post_notification(client, fields) == 200
    await worker.drain()

    subscription = await Subscription.find_one(Subscription.user_id == 22)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(notifier.notices) == 1


async def test_notice_failure_is_retried_without_touching_the_subscription(client, worker, queues, clock, notifier):
    invoice = await new_invoice(client, user_id=23)
    await post_notification(client, notification(invoice["label"]))
    calls = []

    async def flaky(notice):
        calls.append(notice)
        if len(calls) == 1:
            raise ConnectionError("telegram unreachable")
        notifier.notices.append(notice)

    worker.runtime.notifier.payment_accepted = flaky  # type: ignore[method-assign]
    await worker.drain()
    failed = FailedJobRegistry(queue=queues.notices)
    Job.fetch(failed.get_job_ids()[0], connection=queues.connection).requeue()
    await worker.drain()

    assert len(calls) == 2 and len(notifier.notices) == 1
    subscription = await Subscription.find_one(Subscription.user_id == 23)
    assert subscription.current_period_end == clock.now + timedelta(days=30)


async def test_a_saved_payment_method_is_kept_on_the_subscription(client, worker):
    from billing.money import Money
    from billing.providers.base import EventKind, VerifiedEvent
    from tests.consent_support import consent_on
    from webhook_server.keys import LEDGER

    invoice = await new_invoice(client, user_id=24)
    await consent_on(invoice["label"], "yoomoney")  # the payer chose "pay and renew" with this provider
    await client.app[LEDGER].record(VerifiedEvent(
        "yoomoney", "tok-1", invoice["label"], Money(29900, "RUB"), EventKind.PAYMENT,
        payment_method="Visa •••• 4242", payment_token="tok_secret_value",
    ))
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 24)
    assert (subscription.payment_method, subscription.payment_provider, subscription.payment_token) == (
        "Visa •••• 4242", "yoomoney", "tok_secret_value")


@pytest.mark.parametrize("step", STEPS)
async def test_an_order_crashed_at_any_step_ends_paid_once_without_a_subscription(step, client, worker, queues,
                                                                                 notifier):
    _, made = await post_order(client, {**ORDER, "user_id": 23, "order_id": f"crash-{step}"})
    assert await post_notification(client, notification(made["label"], paid_minor=50000)) == 200
    worker.runtime.checkpoint = crash_at(step)
    await worker.drain()
    failed = FailedJobRegistry(queue=queues.fulfilment)
    worker.runtime.checkpoint = lambda reached: None
    for job_id in failed.get_job_ids():
        Job.fetch(job_id, connection=queues.connection).requeue()
    await worker.drain()

    stored = await Invoice.find_one(Invoice.label == made["label"])
    assert (stored.status.value, stored.paid_amount) == ("paid", 50000)
    assert await Subscription.find_one(Subscription.user_id == 23) is None
    [operation] = await operations()
    assert operation.status is OperationStatus.APPLIED and operation.notified_at is not None
    assert [(notice.kind, notice.user_id) for notice in notifier.notices] == [("order", 23)]


@pytest.mark.parametrize("left_by_the_request", ["no claim", "a hold of its own"])
async def test_a_payment_whose_request_did_not_claim_its_invoice_is_claimed_and_paid_by_the_job(
        left_by_the_request, client, worker, clock, notifier):
    """The request records the operation, then claims the invoice; when it stopped in between (or left a hold,
    not a final claim), fulfilment claims the invoice itself before it pays it, and the hold becomes final."""
    invoice = await new_invoice(client, user_id=25)
    assert await post_notification(client, notification(invoice["label"])) == 200
    [operation] = await operations()
    lapse = clock.now + timedelta(minutes=10)
    claim = {"claimed_by": None, "claim_until": None} if left_by_the_request == "no claim" else {
        "claimed_by": operation.key, "claim_until": lapse}
    await Invoice.get_motor_collection().update_one({"label": invoice["label"]}, {"$set": claim})

    await worker.drain()

    stored = await Invoice.find_one(Invoice.label == invoice["label"])
    assert (stored.status.value, stored.paid_by, stored.claimed_by, stored.claim_until) == (
        "paid", operation.key, operation.key, None)
    subscription = await Subscription.find_one(Subscription.user_id == 25)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(notifier.notices) == 1
