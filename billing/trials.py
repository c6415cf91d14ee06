"""Trials: a plan's `trial_days`, free, once per Telegram user ever.

A trial is an ordinary subscription period: `extend` adds it (operation `trial:<user>`), so access, /status and
the scheduler's expiry with its notice and pay link are the paid path's own. Nothing is charged when it ends
unless the user saved a method under consent for auto-renewal (billing/consent.py) - a trial saves none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from billing.errors import UnknownPlan
from billing.plans import Plan
from billing.subscriptions import extend
from db import Subscription
from db.trials import TrialUse

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrialStart:
    subscription: Subscription | None  # None when the user had already used their trial
    fresh: bool


def trial_operation(user_id: int) -> str:
    return f"trial:{user_id}"


async def trial_used(user_id: int) -> bool:
    return await TrialUse.find_one(TrialUse.user_id == user_id) is not None


async def start_trial(plan: Plan, user_id: int, *, now: datetime) -> TrialStart:
    """Insert the user's one TrialUse (the unique index decides between concurrent taps), then add the period.

    A use left unapplied by a crash between the two steps is finished by the next tap, which extend makes
    idempotent under the same operation id; that tap is still told the trial was used.
    """
    if plan.trial_days is None:
        raise UnknownPlan(plan.name)
    use = TrialUse(user_id=user_id, plan=plan.name, days=plan.trial_days, started_at=now)
    try:
        await use.insert()
    except DuplicateKeyError:
        existing = await TrialUse.find_one(TrialUse.user_id == user_id)
        if existing is not None and not existing.applied:
            await _apply(existing, now)
        return TrialStart(None, fresh=False)
    subscription = await _apply(use, now)
    log.info("trial started: user %d, plan %s, %d days", user_id, plan.name, plan.trial_days)
    return TrialStart(subscription, fresh=True)


async def _apply(use: TrialUse, now: datetime) -> Subscription:
    subscription = await extend(use.user_id, use.plan, use.days, by=trial_operation(use.user_id), now=now)
    await TrialUse.get_motor_collection().update_one({"_id": use.id}, {"$set": {"applied": True}})
    return subscription
