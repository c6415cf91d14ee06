"""The notice before every automatic charge (issue 17.2, 376-FZ): RENEWAL_NOTICE_DAYS before the period
ends, a subscription whose saved method will be charged hears the date and the amount, with a button
that turns auto-renewal off in one tap (bot/routers/renewals.py's RenewalChoice).

Once per user and period: the enqueue comes first (its job id, and the notifier's sent-notice key, both
name the user and the period, so a repeat after a crash sends nothing more), then `charge_reminded_for`
is set so later ticks skip the subscription. Subscriptions nothing here charges (no saved method,
auto-renewal off, a provider without charges, or one that renews by itself) get no such notice; the
pay-by-hand reminder of the scheduler is theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from billing.plans import Plan
from billing.money import Money
from billing.ports import RenewalEvent
from billing.renewals import RenewalServices
from billing.renewals.periods import period_ms
from db import Subscription, SubscriptionStatus

BATCH = 500
NOTICE = f"{RenewalEvent.UPCOMING.value}:0"


def will_be_charged(chargeable: list[str]) -> dict[str, Any]:
    """The subscriptions the scheduler charges when their period ends."""
    return {"status": SubscriptionStatus.ACTIVE.value, "auto_renew": True, "payment_token": {"$ne": None},
            "payment_provider": {"$in": chargeable}}


async def notify_coming_charges(now: datetime, services: RenewalServices, chargeable: list[str]) -> int:
    """Enqueue the notice for each period ending within RENEWAL_NOTICE_DAYS that has not had it."""
    days = services.policy.charge_notice_days
    if days <= 0:
        return 0
    charged_here = [name for name in chargeable if name not in services.policy.self_renewing]
    soon = Subscription.find({
        **will_be_charged(charged_here),
        "current_period_end": {"$gt": now + services.policy.lead, "$lte": now + timedelta(days=days)},
    }).limit(BATCH)
    count = 0
    async for subscription in soon:
        period = period_ms(subscription.current_period_end)
        if subscription.charge_reminded_for is not None and period_ms(subscription.charge_reminded_for) == period:
            continue
        await services.queue.enqueue_renewal_notice(subscription.user_id, period, NOTICE)
        await Subscription.get_motor_collection().update_one(
            {"_id": subscription.id}, {"$set": {"charge_reminded_for": subscription.current_period_end}})
        count += 1
    return count


def charge_amount(plan: Plan | None, provider: str, chargers: Mapping[str, Any]) -> Money | None:
    """What the coming charge takes: the plan's price in the currency its provider charges."""
    charger = chargers.get(provider)
    currency = getattr(charger, "charge_currency", None)
    return plan.price(currency) if plan is not None and isinstance(currency, str) else None


def still_charged(subscription: Subscription, chargers: Mapping[str, Any]) -> bool:
    """At send time: the user may have turned auto-renewal off since the notice was queued."""
    return subscription.auto_renew and subscription.payment_token is not None and (
        subscription.payment_provider or "") in chargers
