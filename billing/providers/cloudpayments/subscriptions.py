"""CloudPayments subscriptions (`data.CloudPayments.recurrent`): CloudPayments charges the card on its own
schedule, so the local subscription must know that it renews by itself, and must be able to stop it.

- Binding: once the payment that created a CloudPayments subscription has been applied, the local
  subscription records its id (`Subscription.cloudpayments_subscription_id`) and is self-renewing: no
  reminder with a pay link, no expiry while CloudPayments keeps it Active (the scheduler's filter
  `renewed_by_cloudpayments`). It is bound only under the payer's consent to automatic charges for
  CloudPayments (376-FZ); one created without it is cancelled at once. A row binds once: turning
  auto-renewal off can never be undone by a late binding.
- Stopping: auto-renewal turned off, a refund or a reversal of one of its payments, a binding that
  replaces it, a payment without consent: the row is marked `stop_requested_at` (durable: the scheduler
  queues the cancellation again until CloudPayments confirms it) and /subscriptions/cancel is called
  from the worker's forget-method job. While marked, its Check is refused with code 13.
- CloudPayments' own end (a Recurrent with Cancelled, Rejected or Expired) unbinds the local subscription,
  which then ends at its period end like any other, and the user is told (unless we asked for the end).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from billing.errors import LedgerUnavailable
from billing.events.changes import subscription_canceled
from billing.invoices import find_invoice
from billing.money import Money
from billing.ports import RenewalEvent
from billing.providers.cloudpayments.protocol import CURRENCY
from billing.renewals.periods import period_ms
from billing.subscriptions import get_subscription
from db import Subscription
from db.cloudpayments import CloudPaymentsSubscription

log = logging.getLogger(__name__)

NAME = "cloudpayments"
ACTIVE, PAST_DUE = "Active", "PastDue"
RENEWING = frozenset({ACTIVE, PAST_DUE})  # CloudPayments still charges it (PastDue: retrying a declined charge)
REJECTED = "Rejected"  # three declined charges in a row
ENDED = frozenset({"Cancelled", REJECTED, "Expired"})
BATCH = 200
FIELD = "cloudpayments_subscription_id"
TURNED_OFF = "auto-renewal turned off"  # the stop reason of the user's own choice (bot, page, admin API)


class StopQueue(Protocol):
    """The renewal queue's two calls used here (RqQueues in every process)."""

    async def enqueue_forget_method(self, user_id: int, method_key: str) -> None: ...

    async def enqueue_renewal_notice(self, user_id: int, period_end: int, notice: str) -> None: ...


class SubscriptionCanceller(Protocol):
    async def cancel_subscription(self, subscription_id: str) -> bool:
        """/subscriptions/cancel; True once CloudPayments no longer charges it. Raises ProviderUnavailable."""
        ...


def renewed_by_cloudpayments() -> dict[str, Any]:
    """The scheduler's filter: subscriptions a CloudPayments subscription renews by itself right now."""
    return {FIELD: {"$ne": None}, "auto_renew": True}


def stop_key(subscription_id: str) -> str:
    """The forget-method job's key for a CloudPayments subscription (its id is no secret, but keep ids short)."""
    return f"cps-{subscription_id[-24:]}"


# ---- binding ------------------------------------------------------------------------------------


async def bind(row: CloudPaymentsSubscription, now: datetime, queue: StopQueue | None = None) -> bool:
    """Record on the local subscription that `row` renews it, once its first payment is applied there; True
    when bound now. A subscription created without consent for CloudPayments is stopped instead."""
    if row.bound_at is not None or row.stop_requested_at is not None or row.status not in RENEWING:
        return False
    invoice = await find_invoice(row.label)
    consent = getattr(invoice, "auto_renew_consent", None) if invoice is not None else None
    if consent is None or consent.provider != NAME:
        await request_stop(row, "created without the payer's consent to automatic charges", now, queue)
        return False
    first = f"{NAME}:{row.first_transaction_id}"
    previous = await get_subscription(row.user_id)
    result = await Subscription.get_motor_collection().update_one(
        {"user_id": row.user_id, "applied_operations": first, "reversed_operations": {"$ne": first}},
        {"$set": {FIELD: row.subscription_id, "auto_renew": True, "renewal_consent": consent.model_dump(),
                  "payment_provider": NAME, "payment_token": None, "updated_at": now}})
    if result.modified_count != 1:
        return False  # not applied yet (the worker has not run), or reversed meanwhile
    await CloudPaymentsSubscription.get_motor_collection().update_one(
        {"_id": row.id, "bound_at": None}, {"$set": {"bound_at": now}})
    row.bound_at = now
    log.info("user %s is renewed by cloudpayments subscription %s", row.user_id, row.subscription_id)
    replaced = getattr(previous, FIELD, None) if previous is not None else None
    if replaced and replaced != row.subscription_id:
        old = await CloudPaymentsSubscription.by_id(replaced)
        if old is not None:
            await request_stop(old, f"replaced by subscription {row.subscription_id}", now, queue)
    return True


async def bind_pending(now: datetime, queue: StopQueue | None, limit: int = BATCH) -> int:
    """Bind the subscriptions whose first payment the worker has applied since (see `bind`)."""
    rows = await CloudPaymentsSubscription.find(
        {"bound_at": None, "stop_requested_at": None, "status": {"$in": sorted(RENEWING)}}).limit(limit).to_list()
    return sum([await bind(row, now, queue) for row in rows])


# ---- stopping -----------------------------------------------------------------------------------


async def request_stop(row: CloudPaymentsSubscription, reason: str, now: datetime,
                       queue: StopQueue | None = None) -> bool:
    """Mark `row` for cancellation at CloudPayments and turn the local auto-renewal it drives off; queue the
    cancellation when a queue is at hand (the scheduler queues marked rows again anyway). True when marked now."""
    if row.status in ENDED:
        return False
    result = await CloudPaymentsSubscription.get_motor_collection().update_one(
        {"_id": row.id, "stop_requested_at": None}, {"$set": {"stop_requested_at": now, "stop_reason": reason}})
    row.stop_requested_at = row.stop_requested_at or now
    await Subscription.get_motor_collection().update_one(
        {"user_id": row.user_id, FIELD: row.subscription_id}, {"$set": {"auto_renew": False, "updated_at": now}})
    if result.modified_count == 1:
        log.info("cloudpayments subscription %s of user %s to be cancelled: %s", row.subscription_id, row.user_id,
                 reason)
    if queue is not None:
        await _queue_stop(row, queue)
    return result.modified_count == 1


async def stop_for_payment(transaction_id: str, reason: str, now: datetime,
                           queue: StopQueue | None = None) -> CloudPaymentsSubscription | None:
    """A refund or reversal of one of a subscription's payments stops the subscription; the row, if any."""
    row = await CloudPaymentsSubscription.of_transaction(transaction_id)
    if row is not None:
        await request_stop(row, reason, now, queue)
    return row


async def stop_bound(subscription: Subscription, now: datetime, queue: StopQueue) -> bool:
    """Auto-renewal turned off (bot, page, admin API): stop the CloudPayments subscription renewing it."""
    bound = getattr(subscription, FIELD, None)
    row = await CloudPaymentsSubscription.by_id(bound) if bound else None
    return row is not None and await request_stop(row, TURNED_OFF, now, queue)


async def requeue_stops(queue: StopQueue, limit: int = BATCH) -> int:
    """Queue again every cancellation CloudPayments has not confirmed (an outage, a worker that died)."""
    rows = await CloudPaymentsSubscription.find(
        {"stop_requested_at": {"$ne": None}, "status": {"$in": sorted(RENEWING)}}).limit(limit).to_list()
    for row in rows:
        await _queue_stop(row, queue)
    return len(rows)


async def scheduler_step(now: datetime, queue: StopQueue) -> int:
    """The scheduler's step, before reminders and expiry are decided: bindings made, cancellations queued."""
    bound = await bind_pending(now, queue)
    await requeue_stops(queue)
    return bound


async def _queue_stop(row: CloudPaymentsSubscription, queue: StopQueue) -> None:
    try:
        await queue.enqueue_forget_method(row.user_id, stop_key(row.subscription_id))
    except LedgerUnavailable:
        log.warning("cancellation of cloudpayments subscription %s not queued now; the scheduler queues it again",
                    row.subscription_id)


async def cancel_requested(user_id: int, chargers: Mapping[str, Any]) -> list[CloudPaymentsSubscription]:
    """The forget-method job's step: cancel at CloudPayments every subscription of the user marked for it; the
    rows cancelled now. Raises ProviderUnavailable (the job retries, and the scheduler queues it again)."""
    rows = await CloudPaymentsSubscription.find(
        {"user_id": user_id, "stop_requested_at": {"$ne": None}, "status": {"$in": sorted(RENEWING)}}).to_list()
    canceller: SubscriptionCanceller | None = chargers.get(NAME)
    if rows and canceller is None:
        log.error("user %s: %d cloudpayments subscription(s) to cancel, but CloudPayments is not configured here",
                  user_id, len(rows))
        return []
    return [row for row in rows if canceller is not None and await canceller.cancel_subscription(row.subscription_id)]


def turned_off_by_user(rows: list[CloudPaymentsSubscription]) -> bool:
    """Whether one of these cancelled rows was stopped because the user turned auto-renewal off (and so is
    told), not for a refund, a replacement or a missing consent."""
    return any(row.stop_reason == TURNED_OFF for row in rows)


async def bound_charge(subscription_id: str) -> Money | None:
    """What CloudPayments charges a subscription at each of its dates: the RUB amount of the invoice whose
    payment set it up (the widget's amount), whatever the plan costs today."""
    row = await CloudPaymentsSubscription.by_id(subscription_id)
    minor = row.amounts.get(CURRENCY) if row is not None else None
    return Money(minor, CURRENCY) if minor is not None else None


async def cancelled(subscription_id: str, status: str, now: datetime) -> None:
    """CloudPayments no longer charges it (our cancel went through, or it says so): the row takes its status
    and the local subscription is no longer renewed by it."""
    await CloudPaymentsSubscription.set_status(subscription_id, status, now)
    await Subscription.get_motor_collection().update_one(
        {FIELD: subscription_id}, {"$set": {FIELD: None, "auto_renew": False, "updated_at": now}})


# ---- CloudPayments' own word -------------------------------------------------------------------


async def charge_allowed(row: CloudPaymentsSubscription, now: datetime, queue: StopQueue | None) -> bool:
    """Whether a scheduled charge of `row` may go through (its Check): only while it renews the local
    subscription. A charge of one that does not is refused, and the subscription is stopped."""
    if row.stop_requested_at is not None or row.status in ENDED:
        return False
    local = await get_subscription(row.user_id)
    if local is not None and getattr(local, FIELD, None) != row.subscription_id and row.bound_at is None:
        await bind(row, now, queue)  # the scheduler has not run since the first payment was applied
        local = await get_subscription(row.user_id)
    if local is not None and local.auto_renew and getattr(local, FIELD, None) == row.subscription_id:
        return True
    await request_stop(row, "charged while it no longer renews the subscription here", now, queue)
    return False


async def status_changed(row: CloudPaymentsSubscription, status: str, now: datetime,
                         queue: StopQueue | None) -> None:
    """A Recurrent notification's effect. Cancelled, Rejected or Expired unbinds the local subscription and
    tells the user, unless we asked for it: Rejected (its charges were declined) as a stopped renewal, the
    others as the end coming with a link to pay; nothing while the period is over (the scheduler's expiry
    notice says it). Active again after we asked to stop it: the cancellation is queued again."""
    if status not in ENDED:
        if row.stop_requested_at is not None and queue is not None:
            await _queue_stop(row, queue)
        return
    local = await get_subscription(row.user_id)
    was_bound = local is not None and getattr(local, FIELD, None) == row.subscription_id
    await cancelled(row.subscription_id, status, now)
    if not was_bound or row.stop_requested_at is not None or local is None or queue is None:
        return
    log.info("cloudpayments ended subscription %s of user %s: %s", row.subscription_id, row.user_id, status)
    if local.current_period_end <= now:
        return
    await subscription_canceled(row.user_id, local.plan, local.current_period_end,
                                reason=f"cloudpayments: {status}", now=now)  # billing/events
    event = RenewalEvent.STOPPED if status == REJECTED else RenewalEvent.REMINDER
    await queue.enqueue_renewal_notice(row.user_id, period_ms(local.current_period_end), f"{event.value}:0")
    await Subscription.get_motor_collection().update_one(  # it had the link: the scheduler's reminder is not due
        {"_id": local.id}, {"$set": {"reminded_for": local.current_period_end}})
