"""The renewal scheduler: one tick finds what is due and enqueues it; `run_scheduler` ticks while it holds
the lease, so however many instances run, one works at a time.

Every step is idempotent (a unique Renewal row per period, job ids naming the run, notices keyed by
user and period), so a tick repeated after a crash, or by a second instance that took over the lease,
does nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pymongo.errors import DuplicateKeyError, PyMongoError

from billing.chat_access import sweep_chats
from billing.consent import stop_unconsented
from billing.errors import LedgerUnavailable
from billing.events.changes import expiries_recorded, renewal_noticed, subscription_canceled, subscription_expired
from billing.events.delivery import due_deliveries
from billing.ports import RenewalEvent
from billing.promo import release_expired
from billing.providers.cloudpayments.subscriptions import renewed_by_cloudpayments, scheduler_step
from billing.refunds import due_checks
from billing.renewals import RenewalServices
from billing.renewals.attempt import find_period_renewal
from billing.renewals.cancel import token_fingerprint
from billing.renewals.charge_notices import notify_coming_charges
from billing.renewals.periods import period_ms, renewal_label
from billing.sweep import Sweeper
from db import Subscription, SubscriptionStatus
from db.renewals import OPEN_STATUSES, OPEN_VALUES, Renewal, RenewalStatus

log = logging.getLogger(__name__)

BATCH = 500  # rows per kind and tick; the next tick takes the rest
RENEWING = [SubscriptionStatus.ACTIVE.value, SubscriptionStatus.PAST_DUE.value]


@dataclass(slots=True)
class TickReport:
    opened: int = 0  # renewals opened for periods ending within the lead time
    enqueued: int = 0  # renewal attempts sent to the queue
    notices: int = 0  # renewal notices (re)sent to the queue
    reminded: int = 0
    expired: int = 0
    forgotten: int = 0  # saved methods of cancelled auto-renewals sent (again) for deletion
    unconsented: int = 0  # auto-renewals found on without a recorded consent, turned off (billing/consent.py)
    charge_notices: int = 0  # notices of a coming charge, RENEWAL_NOTICE_DAYS ahead (charge_notices.py)
    refund_checks: int = 0  # look-ups of pending refunds sent to the queue (billing/refunds.py)
    event_deliveries: int = 0  # outbound events (re)sent to the queue (billing/events/delivery.py)
    promo_released: int = 0  # promo uses given back by discounted invoices that expired unpaid (billing/promo.py)
    chat_removals: int = 0  # members of the plans' chats without access, queued for removal (billing/chat_access.py)


async def tick(now: datetime, services: RenewalServices) -> TickReport:
    report = TickReport()
    chargeable = sorted(services.chargers)
    await _provider_subscriptions(now, services)
    report.unconsented = await stop_unconsented(now, BATCH)
    report.opened = await _open_due(now, services, chargeable)
    report.enqueued = await _enqueue_due(now, services)
    report.notices = await _resend_notices(services)
    report.reminded = await _remind(now, services, chargeable)
    report.charge_notices = await notify_coming_charges(now, services, chargeable)
    report.refund_checks = await due_checks(now, services.queue)
    report.expired = await _expire(now, services)
    report.forgotten = await _forget_cancelled(services)
    report.promo_released = await release_expired(now, BATCH)
    await expiries_recorded(now, BATCH)  # an expiry whose event a crash kept from the record (billing/events)
    report.event_deliveries = await due_deliveries(now, services.queue)
    report.chat_removals = await sweep_chats(now, grace=timedelta(days=services.policy.grace_days),
                                             queue=services.queue)
    if any((report.opened, report.enqueued, report.reminded, report.expired)):
        log.info("renewal tick: %d opened, %d attempts enqueued, %d reminded, %d expired", report.opened,
                 report.enqueued, report.reminded, report.expired)
    return report


def _renews_itself(chargeable: list[str]) -> dict[str, Any]:
    return {"auto_renew": True, "renewal_consent": {"$ne": None}, "payment_token": {"$ne": None},
            "payment_provider": {"$in": chargeable}}


async def _open_due(now: datetime, services: RenewalServices, chargeable: list[str]) -> int:
    due = Subscription.find({
        **_renews_itself(chargeable), "status": {"$in": RENEWING},
        "current_period_end": {"$lte": now + services.policy.lead},
    }).limit(BATCH)
    opened = 0
    async for subscription in due:
        period = period_ms(subscription.current_period_end)
        try:
            await Renewal(
                user_id=subscription.user_id, period_end=subscription.current_period_end,
                provider=subscription.payment_provider or "", plan=subscription.plan,
                label=renewal_label(subscription.user_id, period), next_attempt_at=now, created_at=now,
                updated_at=now,
            ).insert()
            opened += 1
        except DuplicateKeyError:
            continue
    return opened


async def _enqueue_due(now: datetime, services: RenewalServices) -> int:
    due = Renewal.find({"status": {"$in": OPEN_VALUES},
                        "next_attempt_at": {"$lte": now}}).sort("next_attempt_at").limit(BATCH)
    count = 0
    async for renewal in due:
        run = f"{renewal.attempts}-{period_ms(renewal.next_attempt_at)}"
        await services.queue.enqueue_renewal(renewal.user_id, period_ms(renewal.period_end), run)
        count += 1
    return count


async def _resend_notices(services: RenewalServices) -> int:
    """Notices a crash kept from the queue: the state change that called for them is stored with them."""
    unsent = Renewal.find({"notice_pending": True}).limit(BATCH)
    count = 0
    async for renewal in unsent:
        assert renewal.notice is not None
        await renewal_noticed(renewal, renewal.updated_at)  # its event too, recorded once (billing/events)
        await services.queue.enqueue_renewal_notice(renewal.user_id, period_ms(renewal.period_end), renewal.notice)
        count += 1
    return count


async def _remind(now: datetime, services: RenewalServices, chargeable: list[str]) -> int:
    """Once per period, a few days before its end, to whoever nothing will renew automatically."""
    horizon = now + timedelta(days=services.policy.reminder_days)
    soon = Subscription.find({
        "status": SubscriptionStatus.ACTIVE.value, "current_period_end": {"$gt": now, "$lte": horizon},
        "$nor": [_renews_itself(chargeable),
                 {"payment_provider": {"$in": sorted(services.policy.self_renewing)}}, renewed_by_cloudpayments()],
    }).limit(BATCH)
    count = 0
    async for subscription in soon:
        if subscription.reminded_for is not None and \
                period_ms(subscription.reminded_for) == period_ms(subscription.current_period_end):
            continue
        await services.queue.enqueue_renewal_notice(
            subscription.user_id, period_ms(subscription.current_period_end), f"{RenewalEvent.REMINDER.value}:0")
        await Subscription.get_motor_collection().update_one(
            {"_id": subscription.id}, {"$set": {"reminded_for": subscription.current_period_end}})
        count += 1
    return count


async def _expire(now: datetime, services: RenewalServices) -> int:
    """Active subscriptions whose period is over and that no open renewal is still working on."""
    ended = Subscription.find({"status": SubscriptionStatus.ACTIVE.value, "current_period_end": {"$lte": now},
                               "$nor": [renewed_by_cloudpayments()]}).limit(BATCH)
    count = 0
    async for subscription in ended:
        period = period_ms(subscription.current_period_end)
        renewal = await find_period_renewal(subscription.user_id, period)
        if renewal is not None and renewal.status in OPEN_STATUSES:
            continue
        if renewal is None and subscription.payment_provider in services.policy.self_renewing:
            if await _mark_expired(subscription, now):  # the provider renews it; nothing to tell the user
                await subscription_expired(subscription.user_id, subscription.plan,
                                           subscription.current_period_end, now=now)
            continue
        told_before = renewal is not None and renewal.status is RenewalStatus.FAILED and \
            renewal.notice is not None and renewal.notice.startswith(RenewalEvent.EXPIRED.value)
        if not told_before:
            await services.queue.enqueue_renewal_notice(subscription.user_id, period,
                                                        f"{RenewalEvent.EXPIRED.value}:0")
        if await _mark_expired(subscription, now):
            await subscription_expired(subscription.user_id, subscription.plan, subscription.current_period_end,
                                       now=now)
            count += 1
    return count


async def _provider_subscriptions(now: datetime, services: RenewalServices) -> int:
    """CloudPayments subscriptions renew by themselves: bound to the local subscription before reminders and
    expiry are decided (neither touches one while it is Active), and their pending cancellations queued again."""
    return await scheduler_step(now, services.queue)


async def _forget_cancelled(services: RenewalServices) -> int:
    """Saved methods still kept after auto-renewal was turned off: their deletion job is (re)queued."""
    kept = Subscription.find({"auto_renew": False, "payment_token": {"$ne": None}}).limit(BATCH)
    count = 0
    async for subscription in kept:
        assert subscription.payment_token is not None
        if subscription.status is not SubscriptionStatus.EXPIRED:  # its event, should a crash have lost it
            await subscription_canceled(subscription.user_id, subscription.plan, subscription.current_period_end,
                                        reason="auto_renew_off", now=subscription.updated_at)
        await services.queue.enqueue_forget_method(subscription.user_id,
                                                   token_fingerprint(subscription.payment_token))
        count += 1
    return count


async def _mark_expired(subscription: Subscription, now: datetime) -> bool:
    result = await Subscription.get_motor_collection().update_one(
        {"_id": subscription.id, "status": SubscriptionStatus.ACTIVE.value,
         "current_period_end": subscription.current_period_end},
        {"$set": {"status": SubscriptionStatus.EXPIRED.value, "updated_at": now}},
    )
    return result.modified_count == 1


class Lease(Protocol):
    """A lock with an expiry that one scheduler instance holds at a time."""

    def hold(self) -> bool:
        """Take the lease or keep it (renewing its expiry); False while another instance holds it."""
        ...

    def release(self) -> None: ...


async def run_scheduler(
    services: RenewalServices, lease: Lease, clock: Callable[[], datetime], *, interval: float,
    stop: asyncio.Event, sweeper: Sweeper | None = None,
) -> None:
    """Tick every `interval` seconds while holding the lease, until `stop` is set; the `sweeper` reconciles
    with the providers when its own interval has passed. A failing tick (the database or Redis away) is
    logged and tried again at the next interval."""
    holding = False
    try:
        while not stop.is_set():
            now_holding = await asyncio.to_thread(lease.hold)
            if now_holding != holding:
                log.info("renewal scheduler %s the lease", "took" if now_holding else "does not hold")
                holding = now_holding
            if holding:
                try:
                    await tick(clock(), services)
                    if sweeper is not None:
                        await sweeper.run_if_due(clock())
                except (PyMongoError, LedgerUnavailable):
                    log.exception("scheduler tick failed; tried again in %s s", interval)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                continue
    finally:
        if holding:
            await asyncio.to_thread(lease.release)
