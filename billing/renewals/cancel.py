"""Turning auto-renewal off and on: the user's choice, from the bot, the payment page or the admin API.

Off stops every open renewal at once and queues the deletion of the saved method at the provider
(where its API allows); the method stays on the subscription until that job removed it there, so a
provider outage only delays the deletion. The paid period runs to its end either way.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime

from billing.errors import BillingError, LedgerUnavailable
from billing.ports import RenewalQueue
from billing.providers.base import SavedMethodCharger
from billing.renewals.attempt import close_open_renewals
from billing.subscriptions import get_subscription
from db import Subscription

log = logging.getLogger(__name__)


class NoSubscription(BillingError):
    """The user has no subscription to change."""


class NoSavedMethod(BillingError):
    """Auto-renewal cannot be turned on: no saved payment method to charge."""


def token_fingerprint(token: str) -> str:
    """Tells one saved method from the next in a job id without putting the token into Redis."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


async def set_auto_renew(user_id: int, enabled: bool, *, queue: RenewalQueue, now: datetime) -> Subscription:
    subscription = await get_subscription(user_id)
    if subscription is None:
        raise NoSubscription(str(user_id))
    if enabled and subscription.payment_token is None:
        raise NoSavedMethod(str(user_id))
    await Subscription.get_motor_collection().update_one(
        {"_id": subscription.id}, {"$set": {"auto_renew": enabled, "updated_at": now}})
    subscription.auto_renew = enabled
    if not enabled:
        closed = await close_open_renewals(user_id, now, reason="auto-renewal turned off")
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


async def forget_saved_method(user_id: int, *, chargers: Mapping[str, SavedMethodCharger]) -> bool:
    """The job after auto-renewal went off: delete the method at the provider, then here. Nothing when the
    user turned auto-renewal on again meanwhile. Raises ProviderUnavailable (the job retries)."""
    subscription = await get_subscription(user_id)
    if subscription is None or subscription.auto_renew or subscription.payment_token is None:
        return False
    token = subscription.payment_token
    charger = chargers.get(subscription.payment_provider or "")
    deleted = await charger.forget(token) if charger is not None else False
    await Subscription.get_motor_collection().update_one(
        {"_id": subscription.id, "auto_renew": False, "payment_token": token},
        {"$set": {"payment_token": None, "payment_method": None}})
    log.info("saved %s method of user %s %s", subscription.payment_provider, user_id,
             "deleted at the provider and here" if deleted else "forgotten here (the provider keeps no delete API)")
    return True
