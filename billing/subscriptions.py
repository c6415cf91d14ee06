"""Subscriptions: extended once per operation, from max(now, current period end)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from db import Subscription, SubscriptionStatus

MAX_ATTEMPTS = 20


class SubscriptionContention(RuntimeError):
    """Too many concurrent writers on one subscription; the job retries."""


async def get_subscription(user_id: int) -> Subscription | None:
    return await Subscription.find_one(Subscription.user_id == user_id)


async def extend(user_id: int, plan: str, period_days: int, *, by: str, now: datetime,
                 ends_at: datetime | None = None) -> Subscription:
    """Add the plan's period once for operation `by`; repeating it with the same `by` changes nothing.

    `ends_at` is the provider's own end of the period paid (Telegram Stars' subscription_expiration_date):
    the period then starts at `ends_at - period` on the provider's clock instead of `now` on ours, so a
    payment applied late, or a renewal, ends when the provider says; time paid beyond it is kept.

    Optimistic concurrency: the update's filter names the version it read and that `by` is not yet
    applied, so two writers never both extend from the same end.
    """
    period = timedelta(days=period_days)
    start = ends_at - period if ends_at is not None else now
    collection = Subscription.get_motor_collection()
    for _ in range(MAX_ATTEMPTS):
        current = await get_subscription(user_id)
        if current is None:
            try:
                created = Subscription(
                    user_id=user_id, plan=plan, current_period_end=start + period,
                    applied_operations=[by], started_at=now, updated_at=now,
                )
                await created.insert()
                return created
            except DuplicateKeyError:
                continue
        if by in current.applied_operations:
            return current
        new_end = max(start, current.current_period_end) + period
        changes: dict[str, Any] = {"current_period_end": new_end, "plan": plan,
                                   "status": SubscriptionStatus.ACTIVE.value, "updated_at": now}
        if current.current_period_end <= now:  # lapsed: a new run of paid periods (a returning subscriber)
            changes["started_at"] = now
        result = await collection.update_one(
            {"_id": current.id, "version": current.version, "applied_operations": {"$ne": by}},
            {
                "$set": changes,
                "$inc": {"version": 1},
                "$push": {"applied_operations": by},
            },
        )
        if result.modified_count == 1:
            current.current_period_end = new_end
            return current
    raise SubscriptionContention(f"user {user_id}: subscription kept changing under us")


async def take_back(user_id: int, period_days: int, *, by: str, now: datetime) -> Subscription | None:
    """Remove the period that operation `by` added, once; the subscription expires if nothing is left."""
    period = timedelta(days=period_days)
    collection = Subscription.get_motor_collection()
    for _ in range(MAX_ATTEMPTS):
        current = await get_subscription(user_id)
        if current is None or by not in current.applied_operations or by in current.reversed_operations:
            return current
        new_end = current.current_period_end - period
        status = SubscriptionStatus.ACTIVE if new_end > now else SubscriptionStatus.EXPIRED
        result = await collection.update_one(
            {"_id": current.id, "version": current.version, "reversed_operations": {"$ne": by}},
            {
                "$set": {"current_period_end": new_end, "status": status.value, "updated_at": now},
                "$inc": {"version": 1},
                "$push": {"reversed_operations": by},
            },
        )
        if result.modified_count == 1:
            current.current_period_end, current.status = new_end, status
            return current
    raise SubscriptionContention(f"user {user_id}: subscription kept changing under us")


async def save_method(user_id: int, *, provider: str, method: str | None, token: str | None) -> None:
    """Keep the payment method the provider saved with a payment, for renewals and /status."""
    await Subscription.get_motor_collection().update_one(
        {"user_id": user_id},
        {"$set": {"payment_method": method, "payment_provider": provider, "payment_token": token}},
    )


def renews_automatically(subscription: Subscription) -> bool:
    """The one answer to "does this subscription renew by itself?", for the bot's /cancel, the admin API, the
    renewal page and the notice before a charge: auto-renewal is on, and either a method of ours is saved under
    the payer's consent (our scheduler charges it) or a CloudPayments subscription is bound to it (CloudPayments
    charges it on its own clock; billing/providers/cloudpayments/subscriptions.py)."""
    if not subscription.auto_renew:
        return False
    ours = subscription.payment_token is not None and subscription.renewal_consent is not None
    return ours or subscription.cloudpayments_subscription_id is not None


def renewal_left_over(subscription: Subscription) -> bool:
    """Auto-renewal is off but what it charged is not gone yet (the saved method's deletion, or the CloudPayments
    subscription's cancellation, is still under way)."""
    return not subscription.auto_renew and (
        subscription.payment_token is not None or subscription.cloudpayments_subscription_id is not None)


def is_active(subscription: Subscription, now: datetime) -> bool:
    """Access now: a paid period still running, or a declined renewal whose retries remain (past_due)."""
    if subscription.status is SubscriptionStatus.PAST_DUE:
        return True
    return subscription.status is SubscriptionStatus.ACTIVE and subscription.current_period_end > now


def with_access(now: datetime) -> dict[str, Any]:
    """The database filter that matches what is_active accepts."""
    return {"$or": [
        {"status": SubscriptionStatus.ACTIVE.value, "current_period_end": {"$gt": now}},
        {"status": SubscriptionStatus.PAST_DUE.value},
    ]}


async def count_with_access(now: datetime) -> int:
    return await Subscription.find(with_access(now)).count()
