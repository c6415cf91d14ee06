"""Stars payments against our ledger: pre-checkout answers, recording charges, renewals, refunds, renewal state.

A Stars charge is recorded like every provider's payment: one VerifiedEvent through Ledger.record,
unique on (telegram_stars, telegram_payment_charge_id), fulfilled by the same idempotent job. What is
particular to Stars:
- a renewal carries the first invoice's payload, and that invoice is paid already; each renewal
  therefore pays an invoice of its own, made for it (label fixed by the charge id, so a redelivery
  finds it) with the first invoice's user, plan, period and Stars price; fulfilment then extends the
  subscription by one period, as for any paid invoice;
- the payer, the first charge id of a subscription and its `subscription_expiration_date` are kept
  beside the ledger (db/stars.py): refunds and `editUserStarSubscription` need them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.errors import DuplicateKeyError

from billing.errors import BillingError, ProviderUnavailable
from billing.invoices import create_invoice, find_invoice, get_invoice
from billing.ledger import Ledger, check_payable, find_operation
from billing.plans import Plan
from billing.ports import FulfilmentQueue
from billing.providers.base import Outcome, ProviderRejected
from billing.providers.stars.protocol import (
    CURRENCY,
    NAME,
    AlreadyRefunded,
    PreCheckout,
    Refusal,
    StarsApi,
    StarsPayment,
    StarsRefund,
    payment_event,
    renewal_label,
)
from db import Invoice, InvoiceStatus, OperationStatus
from db.stars import RenewalState, StarsCharge, StarsSubscription

log = logging.getLogger(__name__)

_CHECK_REFUSALS = {
    Outcome.UNKNOWN_LABEL: Refusal.NOT_FOUND,
    Outcome.ALREADY_PAID: Refusal.ALREADY_PAID,
    Outcome.WRONG_AMOUNT: Refusal.AMOUNT_CHANGED,
    Outcome.WRONG_CURRENCY: Refusal.AMOUNT_CHANGED,
}
RENEWAL_WINDOW = timedelta(days=1)  # how early before the paid period's end a renewal may be asked about
TELEGRAM_STATES = {"active": RenewalState.ACTIVE, "canceled": RenewalState.CANCELED, "failed": RenewalState.FAILED}


class NoSuchStarsSubscription(BillingError):
    """The user has no Stars subscription with this invoice label."""


class CannotResume(BillingError):
    """Only a renewal the bot turned off may the bot turn back on; the user re-enables it in Telegram."""


@dataclass(frozen=True, slots=True)
class Recorded:
    outcome: Outcome
    label: str  # the invoice the ledger operation pays (a renewal's own invoice for renewals)
    extra: bool = False  # the invoice was already paid by another payment: this charge is to be refunded
    subscription: StarsSubscription | None = None


async def pre_checkout_refusal(query: PreCheckout, *, now: datetime, selling: bool) -> Refusal | None:
    """None when Telegram may take the payment; checked in order: the invoice exists, it is payable
    (pending, not expired), the amount and currency are the invoice's, and the payer is its user."""
    invoice = await find_invoice(query.payload)
    if invoice is None:
        return Refusal.NOT_FOUND
    if invoice.status is InvoiceStatus.PAID and await _renews(invoice, query, now):
        return None  # whether Telegram asks before a renewal is unconfirmed; if it does, it may go on
    if not selling:
        return Refusal.NOT_SELLING
    verdict = await check_payable(query.payload, query.money, exact=True, now=now)
    if verdict is Outcome.ALREADY_PAID:
        return Refusal.ALREADY_PAID
    if invoice.expires_at <= now:
        return Refusal.EXPIRED
    if verdict is not None:
        return _CHECK_REFUSALS.get(verdict, Refusal.AMOUNT_CHANGED)
    if query.payer_id != invoice.user_id:
        return Refusal.OTHER_USER  # a forwarded link: the payment would credit someone else
    return None


async def _renews(invoice: Invoice, query: PreCheckout, now: datetime) -> bool:
    """A renewal of the payer's subscription, due now: renewal not turned off, the paid period (nearly) over.
    Anything else on a paid invoice is a second purchase through the same link, refused."""
    subscription = await StarsSubscription.find_one(StarsSubscription.label == invoice.label)
    return (subscription is not None and subscription.user_id == query.payer_id
            and subscription.state is not RenewalState.CANCELED
            and (subscription.expires_at is None or now >= subscription.expires_at - RENEWAL_WINDOW)
            and query.currency == CURRENCY and query.amount == subscription.amount)


async def record_payment(ledger: Ledger, payment: StarsPayment, *, now: datetime, ttl_seconds: int) -> Recorded:
    """Record one successful_payment exactly once and enqueue its fulfilment; safe to repeat (webhook
    retries, concurrent deliveries). Raises LedgerUnavailable or PyMongoError when it could not be
    recorded: the update must then be delivered again."""
    original = await find_invoice(payment.payload)
    label = payment.payload
    if payment.renewal and original is not None and CURRENCY in original.amounts and original.plan is not None:
        label = await _renewal_invoice(original, payment, now=now, ttl_seconds=ttl_seconds)
    await _remember_charge(payment, label, now)
    outcome = await ledger.record(payment_event(payment, label))
    invoice = await find_invoice(label)
    key = f"{NAME}:{payment.charge_id}"
    extra = outcome is Outcome.EXTRA or (  # another payment had claimed the invoice (billing/claims.py)
        invoice is not None and invoice.claimed_by is not None and invoice.claimed_by != key)
    subscription = None
    if payment.recurring and original is not None and not extra and outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE):
        subscription = await _track_subscription(original, payment, now)
    return Recorded(outcome, label, extra, subscription)


async def _renewal_invoice(original: Invoice, payment: StarsPayment, *, now: datetime, ttl_seconds: int) -> str:
    label = renewal_label(payment.charge_id)
    assert original.plan is not None and original.period_days is not None  # only plans are paid in Stars
    plan = Plan(name=original.plan, title=original.plan, period_days=original.period_days,
                prices={CURRENCY: original.amounts[CURRENCY]})
    try:
        await create_invoice(plan, payment.payer_id, now=now, ttl_seconds=ttl_seconds, label=label, renewal=True)
    except DuplicateKeyError:
        pass  # made by an earlier delivery of this charge
    return label


async def _remember_charge(payment: StarsPayment, label: str, now: datetime) -> None:
    charge = StarsCharge(
        charge_id=payment.charge_id, user_id=payment.payer_id, payload=payment.payload, label=label,
        amount=payment.amount, provider_charge_id=payment.provider_charge_id, recurring=payment.recurring,
        first_recurring=payment.first_recurring, expires_at=payment.expires_at, paid_at=payment.paid_at,
        recorded_at=now,
    )
    try:
        await charge.insert()
    except DuplicateKeyError:
        pass  # a redelivery


async def _track_subscription(original: Invoice, payment: StarsPayment, now: datetime) -> StarsSubscription:
    """The Stars subscription of this invoice: created by its first charge seen, its end moved forward by
    each charge, its first charge id set once; a renewal that went through ends a `failed` state."""
    collection = StarsSubscription.get_motor_collection()
    update: dict[str, dict[str, object]] = {
        "$setOnInsert": {"label": original.label, "user_id": payment.payer_id, "plan": original.plan,
                         "amount": original.amounts.get(CURRENCY, payment.amount),
                         "state": RenewalState.ACTIVE.value, "canceled_by_bot": False},
        "$set": {"last_charge_id": payment.charge_id, "updated_at": now},
    }
    if payment.expires_at is not None:
        update["$max"] = {"expires_at": payment.expires_at}
    try:
        await collection.update_one({"label": original.label}, update, upsert=True)
    except DuplicateKeyError:  # a concurrent delivery inserted it first: now it exists
        await collection.update_one({"label": original.label}, update)
    if payment.first_recurring:
        await collection.update_one({"label": original.label, "first_charge_id": None},
                                    {"$set": {"first_charge_id": payment.charge_id}})
    if payment.renewal:
        await collection.update_one({"label": original.label, "state": RenewalState.FAILED.value},
                                    {"$set": {"state": RenewalState.ACTIVE.value}})
    subscription = await StarsSubscription.find_one(StarsSubscription.label == original.label)
    assert subscription is not None
    return subscription


async def refund_charge(api: StarsApi, charge_id: str, *, label: str, now: datetime) -> None:
    """Return a charge's Stars to its payer (a second refund counts as done), and stop the renewal of the
    subscription it belongs to: refunding a period and charging the next would be at odds. The ledger
    reversal is the caller's to enqueue, after this returns."""
    charge = await StarsCharge.find_one(StarsCharge.charge_id == charge_id)
    user_id = charge.user_id if charge is not None else (await get_invoice(label)).user_id
    try:
        await api.refund(user_id, charge_id)
    except AlreadyRefunded:
        log.info("%s:%s was refunded already", NAME, charge_id)
    if charge is None or not charge.recurring:
        return
    subscription = await StarsSubscription.find_one(StarsSubscription.label == charge.payload)
    # Not one we track (e.g. a second subscription bought with the same link): stop that one, by its own first charge
    if subscription is None or (charge.first_recurring and subscription.first_charge_id not in (
            None, charge.charge_id)):
        await _stop_quietly(api, user_id, charge.charge_id if charge.first_recurring else None)
        return
    if subscription.state is not RenewalState.CANCELED:
        if await _stop_quietly(api, subscription.user_id, subscription.first_charge_id or subscription.last_charge_id):
            await _set_state(subscription, RenewalState.CANCELED, by_bot=True, now=now)


async def _stop_quietly(api: StarsApi, user_id: int, charge_id: str | None) -> bool:
    """After a refund went through, a failure to stop the renewal is logged, not raised: the refund stands."""
    if charge_id is None:
        return False
    try:
        await api.edit_subscription(user_id, charge_id, canceled=True)
    except (ProviderRejected, ProviderUnavailable) as err:
        log.error("refunded, but the renewal of %s:%s could not be stopped: %s", NAME, charge_id, err)
        return False
    return True


async def set_renewal(api: StarsApi, *, user_id: int, label: str, on: bool, now: datetime) -> StarsSubscription:
    """Turn auto-renewal off (or back on, if the bot turned it off) with editUserStarSubscription."""
    subscription = await StarsSubscription.find_one(StarsSubscription.label == label)
    if subscription is None or subscription.user_id != user_id:
        raise NoSuchStarsSubscription(label)
    if on and not (subscription.state is RenewalState.CANCELED and subscription.canceled_by_bot):
        raise CannotResume(label)
    charge_id = subscription.first_charge_id or subscription.last_charge_id
    await api.edit_subscription(user_id, charge_id, canceled=not on)
    changed, _ = await _set_state(subscription, RenewalState.ACTIVE if on else RenewalState.CANCELED,
                                  by_bot=not on, now=now)
    return changed


async def renewal_state_changed(label: str, user_id: int, state: str, *, now: datetime) -> StarsSubscription | None:
    """A `subscription` update from Telegram (the user turned renewal off or on, or a renewal charge
    failed). The subscription when this update changed it; None for a repeat or an unknown one."""
    new = TELEGRAM_STATES.get(state)
    subscription = await StarsSubscription.find_one(StarsSubscription.label == label)
    if new is None or subscription is None or subscription.user_id != user_id or subscription.state is new:
        return None
    changed, moved = await _set_state(subscription, new, by_bot=False, now=now)
    return changed if moved else None


async def _set_state(subscription: StarsSubscription, state: RenewalState, *, by_bot: bool,
                     now: datetime) -> tuple[StarsSubscription, bool]:
    """One conditional update from the state we read; True when this call moved it."""
    result = await StarsSubscription.get_motor_collection().update_one(
        {"_id": subscription.id, "state": subscription.state.value},
        {"$set": {"state": state.value, "canceled_by_bot": by_bot and state is RenewalState.CANCELED,
                  "updated_at": now}},
    )
    found = await StarsSubscription.find_one(StarsSubscription.label == subscription.label)
    return found or subscription, result.modified_count == 1


async def reverse_refunded(refund: StarsRefund, queue: FulfilmentQueue) -> bool:
    """A `refunded_payment` message: reverse the charge in the ledger (once; the job is idempotent).
    False when the ledger does not hold it, or it is reversed already."""
    operation = await find_operation(NAME, refund.charge_id)
    if operation is None or operation.status is OperationStatus.REVERSED:
        return False
    await queue.enqueue_reversal(NAME, refund.charge_id, "refunded in Telegram")
    return True


async def user_subscriptions(user_id: int) -> list[StarsSubscription]:
    return await StarsSubscription.find(StarsSubscription.user_id == user_id).sort("-updated_at").to_list()


async def recent_charges(user_id: int, limit: int = 5) -> list[StarsCharge]:
    return await StarsCharge.find(StarsCharge.user_id == user_id).sort("-paid_at").limit(limit).to_list()
