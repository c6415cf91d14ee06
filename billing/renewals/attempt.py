"""One renewal attempt: charge the saved method once, put a success into the ledger, or schedule the next try.

Crash safety rests on the Renewal row. An attempt is started by a conditional update (due → charging,
attempts + 1) before the provider is called; the charge's idempotency key is derived from (subscription,
period, attempt), and the provider's id of the charge is remembered as soon as it is known. A rerun of the
same attempt (RQ after a worker died, or the scheduler finding it again) therefore passes the same key
and the remembered id, and the provider's charge is looked up, never made twice. A success goes through
Ledger.record exactly like a first payment's notification, so fulfilment extends the subscription and
tells the user; the provider's own notification of the same charge is a duplicate there.

No path leaves a renewal open without a next attempt time. A charger answers a refusal no retry can fix
as a hard decline (the attempt ends: the method dropped unless the refusal was about our own credentials,
the user and the admin told once). A temporary failure (ProviderUnavailable: network, timeout, 5xx, 429)
has an unknown outcome: the provider may have made the charge. The renewal goes back to due after the
next RETRY_INTERVALS delay, marked `outcome_unknown`, and the next try repeats the same charge (the same
idempotency key and remembered operation id; for YooKassa a re-POST under one Idempotence-Key is safe for
24 h) instead of starting a new one. Any other exception from the charger is treated the same way, then
raised so that it is seen. Each such try counts against MAX_RETRIES; once they are spent, the renewal
ends as a soft decline does.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pymongo.errors import DuplicateKeyError

from billing.clock import Clock, utc_now
from billing.errors import ProviderUnavailable, UnknownPlan
from billing.events.changes import renewal_noticed
from billing.invoices import create_invoice, find_invoice
from billing.money import Money
from billing.plans import Catalogue, Plan
from billing.ports import RenewalEvent
from billing.providers.base import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    Outcome,
    Remember,
    SavedMethodCharger,
)
from billing.renewals import PENDING_RECHECK, RenewalServices
from billing.renewals.periods import period_filter, period_ms
from billing.steps import Checkpoint, no_checkpoint
from billing.subscriptions import get_subscription
from db import Invoice, InvoiceStatus, Subscription, SubscriptionStatus
from db.renewals import OPEN_STATUSES, OPEN_VALUES, Renewal, RenewalStatus

log = logging.getLogger(__name__)

STEPS = ("before_charge", "after_charge", "after_ledger_record")
RECORDED = (Outcome.ACCEPTED, Outcome.DUPLICATE)


async def find_period_renewal(user_id: int, period: int) -> Renewal | None:
    return await Renewal.find_one({"user_id": user_id, "period_end": period_filter(period)})


async def run_renewal(
    user_id: int, period: int, *, services: RenewalServices, plans: Catalogue, clock: Clock = utc_now,
    checkpoint: Checkpoint = no_checkpoint,
) -> str:
    """The renewal job: what it did, as a word for the job's result and the log."""
    renewal = await find_period_renewal(user_id, period)
    if renewal is None or renewal.status not in OPEN_STATUSES:
        return "nothing_to_do"
    now = clock()
    if renewal.next_attempt_at > now:
        return "not_due"
    invoice = await find_invoice(renewal.label)
    if invoice is not None and invoice.status is not InvoiceStatus.PENDING:
        await _finish(renewal, RenewalStatus.PAID, now)
        return "paid"
    subscription = await get_subscription(user_id)
    if subscription is None or not _still_renews(subscription, renewal):
        await close_renewal(renewal, now, reason="nothing to renew any more")
        return "closed"
    charger = services.chargers.get(renewal.provider)
    plan = _plan(plans, subscription.plan)
    price = plan.price(charger.charge_currency) if charger is not None and plan is not None else None
    if charger is None or plan is None or price is None:
        why = (f"{renewal.provider} cannot charge saved methods here" if charger is None
               else f"plan {subscription.plan!r} is gone" if plan is None
               else f"plan {plan.name!r} has no {charger.charge_currency} price")
        await _give_up(renewal, renewal.attempts, ChargeResult(ChargeStatus.DECLINED, reason=why, hard=False),
                       services, now)
        return "failed"
    invoice = invoice or await _renewal_invoice(renewal, plan, services, now)
    price = _invoice_price(invoice, price)
    started = await _start_attempt(renewal, now)
    if started is None:
        return "busy"
    renewal = started
    checkpoint("before_charge")
    attempt = renewal.attempts

    async def remember(operation_id: str) -> None:
        await Renewal.get_motor_collection().update_one(
            {"_id": renewal.id, "attempts": attempt, "status": {"$in": [RenewalStatus.CHARGING.value,
                                                                       RenewalStatus.PENDING.value]}},
            {"$set": {"operation_id": operation_id, "updated_at": clock()}},
        )

    request = ChargeRequest(
        label=renewal.label, amount=price, token=subscription.payment_token or "",
        idempotency_key=f"ymds-renew-{subscription.id}-{period}-{renewal.charge_attempt or attempt}",
        user_id=user_id, description=f"{plan.title}: renewal", known_operation_id=renewal.operation_id,
    )
    result = await _charge(charger, request, remember, renewal, attempt, services, clock)
    if result is None:
        return "unavailable"
    checkpoint("after_charge")
    now = clock()
    if result.status is ChargeStatus.SUCCEEDED:
        return await _succeeded(renewal, result, services, checkpoint, now)
    if result.status is ChargeStatus.PENDING:
        await _update_attempt(renewal, attempt, {"status": RenewalStatus.PENDING.value,
                                                 "operation_id": result.operation_id or renewal.operation_id,
                                                 "next_attempt_at": now + PENDING_RECHECK})
        log.info("renewal of user %s attempt %d: %s has not decided; looked up again at %s", user_id, attempt,
                 renewal.provider, now + PENDING_RECHECK)
        return "pending"
    return await _declined(renewal, attempt, result, services, now)


async def _charge(charger: SavedMethodCharger, request: ChargeRequest, remember: Remember, renewal: Renewal,
                  attempt: int, services: RenewalServices, clock: Clock) -> ChargeResult | None:
    """The charger's answer; None when the try failed with an unknown outcome and the renewal was moved on
    (to the next try of the same charge, or to its end when the retries are spent)."""
    try:
        return await charger.charge(request, remember)
    except ProviderUnavailable as err:
        await _outcome_unknown(renewal, attempt, f"{renewal.provider} unavailable: {str(err)[:200]}", services,
                               clock())
        return None
    except Exception as err:  # not hidden: recorded as an unknown outcome so the renewal moves on, then raised
        await _outcome_unknown(renewal, attempt, f"{renewal.provider} charge failed ({type(err).__name__})",
                               services, clock())
        raise


async def _outcome_unknown(renewal: Renewal, attempt: int, reason: str, services: RenewalServices,
                           now: datetime) -> None:
    """The try may or may not have charged: the next try repeats the same charge after the next delay; with
    the retries spent, the renewal ends as a soft decline. The user is told only then (nothing was declined)."""
    if services.policy.exhausted(attempt):
        await _give_up(renewal, attempt, ChargeResult(ChargeStatus.DECLINED, reason=reason), services, now)
        return
    next_at = now + services.policy.delay_after(attempt)
    await _update_attempt(renewal, attempt, {"status": RenewalStatus.DUE.value, "next_attempt_at": next_at,
                                             "outcome_unknown": True, "last_reason": reason, "updated_at": now})
    log.warning("renewal of user %s attempt %d: %s; the same charge is tried again at %s", renewal.user_id,
                attempt, reason, next_at.isoformat())


def _invoice_price(invoice: Invoice, price: Money) -> Money:
    """The renewal invoice's own amount in the charge currency: fixed at its creation, so every try of one
    charge sends the same body (YooKassa refuses a reused Idempotence-Key with another body) and the ledger
    finds the amount it expects even after the plan's price changed."""
    minor = invoice.amounts.get(price.currency)
    return price if minor is None else Money(minor, price.currency)


def _plan(plans: Catalogue, name: str) -> Plan | None:
    try:
        return plans.get(name)
    except UnknownPlan:
        return None


def _still_renews(subscription: Subscription, renewal: Renewal) -> bool:
    """Auto-renewal still on, the same saved method, and the period this renewal continues still the last."""
    return (
        subscription.auto_renew
        and subscription.payment_token is not None
        and subscription.payment_provider == renewal.provider
        and subscription.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
        and period_ms(subscription.current_period_end) == period_ms(renewal.period_end)
    )


async def _renewal_invoice(renewal: Renewal, plan: Plan, services: RenewalServices, now: datetime) -> Invoice:
    """The period's invoice, made once: it stays payable through every retry of the schedule."""
    policy = services.policy
    lifetime = policy.lead + sum((policy.delay_after(n) for n in range(1, policy.max_retries + 1)), timedelta())
    try:
        return await create_invoice(plan, renewal.user_id, now=now, label=renewal.label, renewal=True,
                                    ttl_seconds=int((lifetime + timedelta(days=1)).total_seconds()))
    except DuplicateKeyError:
        invoice = await find_invoice(renewal.label)
        assert invoice is not None
        return invoice


async def _start_attempt(renewal: Renewal, now: datetime) -> Renewal | None:
    """due → charging with the next attempt number; a charging or pending attempt is carried on as it is.
    None when a concurrent run started it first."""
    if renewal.status is RenewalStatus.DUE:
        changes: dict[str, object] = {"status": RenewalStatus.CHARGING.value, "outcome_unknown": False,
                                      "updated_at": now}
        if not renewal.outcome_unknown:  # a new charge; otherwise the same one again (its key, its remembered id)
            changes.update(operation_id=None, charge_attempt=renewal.attempts + 1)
        result = await Renewal.get_motor_collection().update_one(
            {"_id": renewal.id, "status": RenewalStatus.DUE.value, "attempts": renewal.attempts},
            {"$set": changes, "$inc": {"attempts": 1}},
        )
        if result.modified_count != 1:
            return None
        if not renewal.outcome_unknown:
            renewal.operation_id, renewal.charge_attempt = None, renewal.attempts + 1
        renewal.status, renewal.attempts, renewal.outcome_unknown = RenewalStatus.CHARGING, renewal.attempts + 1, False
    return renewal


async def _update_attempt(renewal: Renewal, attempt: int, changes: dict[str, object]) -> bool:
    """Move the running attempt on; False when it is no longer the running one (a concurrent run moved it)."""
    result = await Renewal.get_motor_collection().update_one(
        {"_id": renewal.id, "attempts": attempt,
         "status": {"$in": [RenewalStatus.CHARGING.value, RenewalStatus.PENDING.value]}},
        {"$set": changes},
    )
    return result.modified_count == 1


async def _succeeded(renewal: Renewal, result: ChargeResult, services: RenewalServices, checkpoint: Checkpoint,
                     now: datetime) -> str:
    assert result.event is not None, "a succeeded charge carries the event the ledger records"
    outcome = await services.ledger.record(result.event)
    checkpoint("after_ledger_record")
    if outcome not in RECORDED:
        raise RuntimeError(f"renewal charge {result.event.provider}:{result.event.operation_id} for "
                           f"{renewal.label} was taken but the ledger refused it ({outcome.value}): check it by hand")
    await _finish(renewal, RenewalStatus.PAID, now, operation_id=result.event.operation_id)
    log.info("renewal of user %s paid by %s:%s", renewal.user_id, renewal.provider, result.event.operation_id)
    return "paid"


async def _declined(renewal: Renewal, attempt: int, result: ChargeResult, services: RenewalServices,
                    now: datetime) -> str:
    if result.hard or services.policy.exhausted(attempt):
        await _give_up(renewal, attempt, result, services, now)
        return "failed"
    next_at = now + services.policy.delay_after(attempt)
    notice = f"{RenewalEvent.FAILED.value}:{attempt}"
    moved = await _update_attempt(renewal, attempt, {
        "status": RenewalStatus.DUE.value, "next_attempt_at": next_at, "operation_id": None,
        "last_reason": result.reason, "notice": notice, "notice_pending": True, "updated_at": now,
    })
    if moved:
        await Subscription.get_motor_collection().update_one(
            {"user_id": renewal.user_id, "status": SubscriptionStatus.ACTIVE.value,
             "current_period_end": renewal.period_end},
            {"$set": {"status": SubscriptionStatus.PAST_DUE.value, "updated_at": now}},
        )
        await renewal_noticed(renewal.model_copy(update={"notice": notice, "last_reason": result.reason,
                                                         "next_attempt_at": next_at}), now)
        await services.queue.enqueue_renewal_notice(renewal.user_id, period_ms(renewal.period_end), notice)
    log.warning("renewal of user %s attempt %d declined by %s (%s); next attempt at %s", renewal.user_id, attempt,
                renewal.provider, result.reason, next_at.isoformat())
    return "declined"


async def _give_up(renewal: Renewal, attempt: int, result: ChargeResult, services: RenewalServices,
                   now: datetime) -> None:
    """No more attempts this period: a hard decline also drops the saved method (unless the refusal was about
    our credentials, not the method); the subscription expires
    when its period is over (now, after the retries), or runs to its end; the user gets a link to pay by hand."""
    ended = renewal.period_end <= now
    event = RenewalEvent.EXPIRED if ended else RenewalEvent.STOPPED
    notice = f"{event.value}:{attempt}"
    moved = await Renewal.get_motor_collection().update_one(
        {"_id": renewal.id, "attempts": attempt, "status": {"$in": OPEN_VALUES}},
        {"$set": {"status": RenewalStatus.FAILED.value, "last_reason": result.reason, "hard_decline": result.hard,
                  "notice": notice, "notice_pending": True, "updated_at": now}},
    )
    if moved.modified_count != 1:
        return
    changes: dict[str, object] = {
        "status": (SubscriptionStatus.EXPIRED if ended else SubscriptionStatus.ACTIVE).value, "updated_at": now}
    if result.hard and not result.keep_method:
        changes["payment_token"] = None
    await Subscription.get_motor_collection().update_one(
        {"user_id": renewal.user_id, "current_period_end": renewal.period_end,
         "status": {"$in": [SubscriptionStatus.ACTIVE.value, SubscriptionStatus.PAST_DUE.value]}},
        {"$set": changes},
    )
    await renewal_noticed(renewal.model_copy(update={"notice": notice, "last_reason": result.reason}), now)
    await services.queue.enqueue_renewal_notice(renewal.user_id, period_ms(renewal.period_end), notice)
    log.warning("renewal of user %s stopped after attempt %d (%s%s); subscription %s", renewal.user_id, attempt,
                result.reason, ", hard decline" if result.hard else "", "expired" if ended else "runs to its end")


async def _finish(renewal: Renewal, status: RenewalStatus, now: datetime, operation_id: str | None = None) -> None:
    changes: dict[str, object] = {"status": status.value, "updated_at": now}
    if operation_id is not None:
        changes["operation_id"] = operation_id
    await Renewal.get_motor_collection().update_one(
        {"_id": renewal.id, "status": {"$in": OPEN_VALUES}}, {"$set": changes})


async def close_renewal(renewal: Renewal, now: datetime, *, reason: str) -> None:
    """Nothing to charge any more (renewed by hand, auto-renewal off, method gone). A subscription kept
    past_due for this period goes back to active, so it ends (and is told) at its period end as usual."""
    result = await Renewal.get_motor_collection().update_one(
        {"_id": renewal.id, "status": {"$in": OPEN_VALUES}},
        {"$set": {"status": RenewalStatus.CLOSED.value, "last_reason": reason, "updated_at": now}},
    )
    if result.modified_count == 1:
        await Subscription.get_motor_collection().update_one(
            {"user_id": renewal.user_id, "current_period_end": renewal.period_end,
             "status": SubscriptionStatus.PAST_DUE.value},
            {"$set": {"status": SubscriptionStatus.ACTIVE.value, "updated_at": now}},
        )
        log.info("renewal of user %s for the period ending %s closed: %s", renewal.user_id,
                 renewal.period_end.isoformat(), reason)


async def close_open_renewals(user_id: int, now: datetime, *, reason: str) -> int:
    """Close every open renewal of a user (auto-renewal turned off); how many were open."""
    open_ones = await Renewal.find({"user_id": user_id,
                                    "status": {"$in": OPEN_VALUES}}).to_list()
    for renewal in open_ones:
        await close_renewal(renewal, now, reason=reason)
    return len(open_ones)
