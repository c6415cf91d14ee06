"""Turning auto-renewal off and on: the user's choice, from the bot, the payment page or the admin API.

Off withdraws the payer's consent, stops every open renewal at once and queues the deletion of the saved
method at the provider (where its API allows: Payme's cards.remove; YooKassa and CloudPayments have no call
that deletes a saved card, so there it is forgotten here and never charged again); the method stays on the
subscription until that job removed it, so a provider outage only delays the deletion, and the user is told
which of the two happened. A CloudPayments subscription renewing it is cancelled at CloudPayments by the same
job (/subscriptions/cancel), and the user is told once CloudPayments no longer charges it. The paid period runs
to its end either way. On again needs a saved method kept under a consent that was never withdrawn: a withdrawn
consent is given again only on the payment page.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime

from billing.errors import BillingError, LedgerUnavailable
from billing.events.changes import subscription_canceled
from billing.plans import Catalogue
from billing.ports import Notifier, RenewalEvent, RenewalNotice, RenewalQueue
from billing.providers import PROVIDER_NAMES
from billing.providers.base import SavedMethodCharger
from billing.providers.cloudpayments.subscriptions import (
    NAME as CLOUDPAYMENTS,
    cancel_requested,
    stop_bound,
    turned_off_by_user,
)
from billing.renewals.attempt import close_open_renewals
from billing.subscriptions import get_subscription, renews_automatically
from db import Subscription

log = logging.getLogger(__name__)


class NoSubscription(BillingError):
    """The user has no subscription to change."""


class NoSavedMethod(BillingError):
    """Auto-renewal cannot be turned on: no saved payment method the payer agreed to be charged."""


def token_fingerprint(token: str) -> str:
    """Tells one saved method from the next in a job id without putting the token into Redis."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


async def set_auto_renew(user_id: int, enabled: bool, *, queue: RenewalQueue, now: datetime) -> Subscription:
    subscription = await get_subscription(user_id)
    if subscription is None:
        raise NoSubscription(str(user_id))
    if enabled and renews_automatically(subscription):
        return subscription  # on already (a CloudPayments subscription renewing it has no saved method of ours)
    if enabled and (subscription.payment_token is None or subscription.renewal_consent is None):
        raise NoSavedMethod(str(user_id))
    was_renewing = renews_automatically(subscription)
    changes: dict[str, object] = {"auto_renew": enabled, "updated_at": now}
    if not enabled:
        changes["renewal_consent"] = None  # withdrawn: only the payment page's choice gives it again
    await Subscription.get_motor_collection().update_one({"_id": subscription.id}, {"$set": changes})
    subscription.auto_renew = enabled
    if not enabled:
        subscription.renewal_consent = None
    if not enabled:
        if was_renewing:  # right after the write; the scheduler records it too while the saved method is kept
            await subscription_canceled(user_id, subscription.plan, subscription.current_period_end,
                                        reason="auto_renew_off", now=now)
        closed = await close_open_renewals(user_id, now, reason="auto-renewal turned off")
        await stop_bound(subscription, now, queue)  # the CloudPayments subscription renewing it, if any
        if subscription.payment_token is not None:
            try:
                await queue.enqueue_forget_method(user_id, token_fingerprint(subscription.payment_token))
            except LedgerUnavailable:
                log.warning("user %s: the saved method's deletion could not be queued now; the scheduler "
                            "queues it again", user_id)
        log.info("user %s turned auto-renewal off (%d open renewal(s) closed)", user_id, closed)
    else:
        log.info("user %s turned auto-renewal on", user_id)
    return subscription


async def forget_saved_method(user_id: int, *, chargers: Mapping[str, SavedMethodCharger],
                              notifier: Notifier | None = None, plans: Catalogue | None = None) -> bool:
    """The job after auto-renewal went off: delete the method at the provider, then here, then tell the user
    (once: the notifier keys the notice by user and period). Nothing when auto-renewal is on again meanwhile.
    Raises ProviderUnavailable (the job retries)."""
    stopped = await cancel_requested(user_id, chargers)  # CloudPayments subscriptions marked for cancelling
    subscription = await get_subscription(user_id)
    if subscription is not None and notifier is not None and turned_off_by_user(stopped):
        await notifier.renewal_changed(RenewalNotice(
            event=RenewalEvent.SUBSCRIPTION_CANCELLED, user_id=user_id,
            plan_title=plans.title(subscription.plan) if plans is not None else subscription.plan,
            period_end=subscription.current_period_end, provider=CLOUDPAYMENTS))
    if subscription is None or subscription.auto_renew or subscription.payment_token is None:
        return False
    token = subscription.payment_token
    charger = chargers.get(subscription.payment_provider or "")
    deleted = await charger.forget(token) if charger is not None else False
    result = await Subscription.get_motor_collection().update_one(
        {"_id": subscription.id, "auto_renew": False, "payment_token": token},
        {"$set": {"payment_token": None, "payment_method": None}})
    log.info("saved %s method of user %s %s", subscription.payment_provider, user_id,
             "deleted at the provider and here" if deleted else "forgotten here (the provider keeps no delete API)")
    if result.modified_count == 1 and notifier is not None:
        await notifier.renewal_changed(RenewalNotice(
            event=RenewalEvent.METHOD_DELETED if deleted else RenewalEvent.METHOD_FORGOTTEN, user_id=user_id,
            plan_title=plans.title(subscription.plan) if plans is not None else subscription.plan,
            period_end=subscription.current_period_end, provider=subscription.payment_provider or "",
            reason=_method_named(subscription)))
    return True


def _method_named(subscription: Subscription) -> str:
    """The method as the user's notice names it: "Visa •••• 4242, YooKassa"."""
    provider = PROVIDER_NAMES.get(subscription.payment_provider or "", subscription.payment_provider or "")
    return ", ".join(part for part in (subscription.payment_method, provider) if part)
