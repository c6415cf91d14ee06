"""Telling users about their renewal: reminders, declines with the next try, the end with a link to pay."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.clock import Clock
from billing.errors import UnknownPlan
from billing.invoices import LinkIssuer
from billing.plans import Catalogue
from billing.ports import Notifier, RenewalEvent, RenewalNotice
from billing.renewals.attempt import find_period_renewal
from billing.renewals.charge_notices import charge_amount, still_charged
from billing.renewals.periods import period_from_ms
from billing.subscriptions import get_subscription
from db.renewals import Renewal, RenewalStatus
from db.users import stored_language


async def send_renewal_notice(
    user_id: int, period: int, notice: str, *, notifier: Notifier, plans: Catalogue, links: LinkIssuer,
    clock: Clock, chargers: Mapping[str, Any] | None = None,
) -> bool:
    """Send notice "<event>:<attempt>" about the period ending at `period`; True when it went out now. The
    notice of a coming charge (UPCOMING) carries the amount and no link to pay, and is dropped when nothing
    will charge any more (auto-renewal turned off meanwhile)."""
    event = RenewalEvent(notice.partition(":")[0])
    subscription = await get_subscription(user_id)
    upcoming = event is RenewalEvent.UPCOMING
    if subscription is None or (upcoming and not still_charged(subscription, chargers or {})):
        return False
    renewal = await find_period_renewal(user_id, period)
    now = clock()
    try:
        plan = plans.get(subscription.plan)
    except UnknownPlan:
        plan = None
    pay_url = await links.link_for(plan, user_id, now=now, lang=await stored_language(user_id)) \
        if plan and not upcoming else None
    retrying = renewal is not None and renewal.status is RenewalStatus.DUE and event is RenewalEvent.FAILED
    await notifier.renewal_changed(RenewalNotice(
        event=event, user_id=user_id, plan_title=plans.title(subscription.plan), period_end=period_from_ms(period),
        pay_url=pay_url, next_attempt_at=renewal.next_attempt_at if retrying and renewal else None,
        reason=(renewal.last_reason or "") if renewal is not None else "",
        provider=renewal.provider if renewal is not None else (subscription.payment_provider or ""),
        amount=await charge_amount(subscription, plan, chargers or {}) if upcoming else None,
    ))
    if renewal is not None:
        await Renewal.get_motor_collection().update_one(
            {"_id": renewal.id, "notice": notice}, {"$set": {"notice_pending": False}})
    return True
