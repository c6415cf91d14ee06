"""The notice before every automatic charge (issue 17.2, 376-FZ): RENEWAL_NOTICE_DAYS before the period
ends, a subscription that will be charged automatically hears the date and the amount, with a button
that turns auto-renewal off in one tap (bot/routers/renewals.py's RenewalChoice).

Two kinds are charged automatically (billing.subscriptions.renews_automatically): a method of ours saved under
consent, which our scheduler charges at the period end, and a bound CloudPayments subscription, which
CloudPayments charges on its own clock. That clock is the one the period end here was made from: the widget
set the subscription up with the plan's period (interval Day, period = the plan's days) at the first payment,
whose period ends then too, and each scheduled charge extends it by the same period. So the notice goes out
RENEWAL_NOTICE_DAYS before the period end we know, naming the amount the CloudPayments subscription was set
up with (not today's plan price: CloudPayments charges what it was given). The one-tap cancel then stops it
at CloudPayments (/subscriptions/cancel, from the worker).

Once per user and period: the enqueue comes first (its job id, and the notifier's sent-notice key, both
name the user and the period, so a repeat after a crash sends nothing more), then `charge_reminded_for`
is set so later ticks skip the subscription. Subscriptions nothing charges automatically (no saved method,
auto-renewal off, a provider without charges, or one that renews by itself like Telegram Stars) get no
such notice; the pay-by-hand reminder of the scheduler is theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from billing.money import Money
from billing.plans import Plan
from billing.ports import RenewalEvent
from billing.providers.cloudpayments.subscriptions import bound_charge, renewed_by_cloudpayments
from billing.renewals import RenewalServices
from billing.renewals.periods import period_ms
from billing.subscriptions import renews_automatically
from db import Subscription, SubscriptionStatus

BATCH = 500
NOTICE = f"{RenewalEvent.UPCOMING.value}:0"


def will_be_charged(chargeable: list[str]) -> dict[str, Any]:
    """The subscriptions charged automatically when their period ends: by our scheduler (a saved method under
    consent, with a provider charged here) or by CloudPayments (a bound subscription); as renews_automatically."""
    return {"status": SubscriptionStatus.ACTIVE.value, "auto_renew": True, "$or": [
        {"payment_token": {"$ne": None}, "renewal_consent": {"$ne": None}, "payment_provider": {"$in": chargeable}},
        renewed_by_cloudpayments()]}


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


async def charge_amount(subscription: Subscription, plan: Plan | None, chargers: Mapping[str, Any]) -> Money | None:
    """What the coming charge takes: what the bound CloudPayments subscription charges, else the plan's price in
    the currency the saved method's provider charges."""
    if subscription.cloudpayments_subscription_id is not None:
        return await bound_charge(subscription.cloudpayments_subscription_id)
    charger = chargers.get(subscription.payment_provider or "")
    currency = getattr(charger, "charge_currency", None)
    return plan.price(currency) if plan is not None and isinstance(currency, str) else None


def still_charged(subscription: Subscription, chargers: Mapping[str, Any]) -> bool:
    """At send time: the user may have turned auto-renewal off since the notice was queued."""
    if not renews_automatically(subscription):
        return False
    return subscription.cloudpayments_subscription_id is not None or (subscription.payment_provider or "") in chargers
