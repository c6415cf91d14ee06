"""The events of each state change, as the job steps that make them emit (billing/events/outlet.py).

Each cause names what happened exactly once (a ledger operation, a renewal attempt, a period, a payout claim), so
the event id derived from it is the same however often the step runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from billing.clock import utc_now
from billing.events import EventType
from billing.events.outlet import emit, installed
from billing.events.signing import event_id
from billing.money import Money
from billing.ports import RenewalEvent
from db import Invoice, Operation, Subscription, SubscriptionStatus
from db.events import OutboundEvent
from db.payouts import ClaimStatus, PayoutClaim
from db.renewals import Renewal

EXPIRY_CATCH_UP = timedelta(hours=1)  # how far back the scheduler looks for an expiry whose event a crash lost
PAYOUT_EVENTS = {ClaimStatus.PAID: EventType.PAYOUT_PAID, ClaimStatus.FAILED: EventType.PAYOUT_FAILED}


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


async def payment_applied(operation: Operation, now: datetime) -> None:
    """payment.succeeded for any paid invoice; subscription.activated or .renewed when it extended a plan."""
    if installed() is None:
        return
    invoice = await Invoice.find_one(Invoice.label == operation.label)
    if invoice is None:
        return
    paid_at = invoice.paid_at or operation.applied_at or now
    data: dict[str, Any] = {
        "invoice": invoice.label, "kind": invoice.kind.value, "user_id": invoice.user_id,
        "provider": operation.provider, "operation_id": operation.operation_id,
        **_money(operation.amount, operation.currency), "paid_at": paid_at,
        "plan": invoice.plan, "order_id": invoice.order_id, "metadata": invoice.metadata,
        "description": invoice.description, "message": invoice.donor_message,
    }
    await emit(EventType.PAYMENT_SUCCEEDED, operation.key, data, now=paid_at)
    if invoice.plan is None:
        return
    subscription = await Subscription.find_one(Subscription.user_id == invoice.user_id)
    if subscription is None or operation.key not in subscription.applied_operations:
        return
    renewed = invoice.renewal or await Renewal.find_one(Renewal.label == invoice.label) is not None
    kind = EventType.SUBSCRIPTION_RENEWED if renewed else EventType.SUBSCRIPTION_ACTIVATED
    await emit(kind, operation.key, {
        "user_id": invoice.user_id, "plan": invoice.plan, "status": subscription.status.value,
        "current_period_end": subscription.current_period_end, "invoice": invoice.label,
        "provider": operation.provider, "operation_id": operation.operation_id,
        "auto_renew": subscription.auto_renew,
    }, now=paid_at)


async def renewal_noticed(renewal: Renewal, now: datetime) -> None:
    """The event of the renewal state change that set the row's notice: "failed:<n>" is subscription.past_due (the
    n-th charge declined, retried at next_attempt_at), "expired:<n>" is subscription.expired, "stopped:<n>" (no
    retry left while the period still runs) is subscription.canceled. Called right after
    the change, and again by the scheduler's tick while the notice is pending, so a crash between the change and
    this call loses nothing (the notice and the event are kept together)."""
    if installed() is None or renewal.notice is None:
        return
    event, _, attempt = renewal.notice.partition(":")
    if event == RenewalEvent.FAILED.value:
        await emit(EventType.SUBSCRIPTION_PAST_DUE, f"{renewal.id}:{attempt}", {
            "user_id": renewal.user_id, "plan": renewal.plan, "period_end": renewal.period_end,
            "provider": renewal.provider, "attempt": int(attempt), "reason": renewal.last_reason or "",
            "next_attempt_at": renewal.next_attempt_at,
        }, now=now)
    elif event == RenewalEvent.EXPIRED.value:
        await subscription_expired(renewal.user_id, renewal.plan, renewal.period_end, now=now)
    elif event == RenewalEvent.STOPPED.value:
        await subscription_canceled(renewal.user_id, renewal.plan, renewal.period_end,
                                    reason=f"renewal_failed: {renewal.last_reason or ''}".rstrip(": "), now=now)


async def subscription_expired(user_id: int, plan: str, period_end: datetime, *, now: datetime) -> None:
    """Once per period: the period's end names it, whether the scheduler's expiry or a renewal's give-up ended it."""
    await emit(EventType.SUBSCRIPTION_EXPIRED, _period_cause(user_id, period_end), {
        "user_id": user_id, "plan": plan, "period_end": period_end,
    }, now=now)


async def expiries_recorded(now: datetime, limit: int) -> int:
    """The scheduler's step: subscriptions that ended within EXPIRY_CATCH_UP (the period over when they were
    marked, not a refund taking the period back) whose subscription.expired a crash kept from the record right
    after the mark. Returns how many it recorded."""
    if installed() is None:
        return 0
    window = {"$gte": now - EXPIRY_CATCH_UP, "$lte": now}
    recent = await Subscription.find({"status": SubscriptionStatus.EXPIRED.value, "updated_at": window}
                                     ).limit(limit).to_list()
    ended = {event_id(EventType.SUBSCRIPTION_EXPIRED.value, _period_cause(s.user_id, s.current_period_end)): s
             for s in recent if s.current_period_end <= s.updated_at and not _taken_back(s)}
    known = {e.event_id for e in await OutboundEvent.find({"event_id": {"$in": list(ended)}}).to_list()}
    for id_, subscription in ended.items():
        if id_ not in known:
            await subscription_expired(subscription.user_id, subscription.plan, subscription.current_period_end,
                                       now=subscription.updated_at)
    return len(set(ended) - known)


def _taken_back(subscription: Subscription) -> bool:
    """Its latest payment was reversed: the refund ended it, and payment.refunded said so."""
    return bool(subscription.applied_operations) and subscription.applied_operations[-1] in \
        subscription.reversed_operations


def _period_cause(user_id: int, period_end: datetime) -> str:
    return f"{user_id}:{period_end.isoformat()}"


async def subscription_canceled(user_id: int, plan: str, period_end: datetime, *, reason: str, now: datetime) -> None:
    """Nothing will renew the subscription any more (auto-renewal turned off, the renewal given up on, the
    provider's own subscription ended): it runs to the end of its period. Once per period, whichever came first."""
    await emit(EventType.SUBSCRIPTION_CANCELED, _period_cause(user_id, period_end), {
        "user_id": user_id, "plan": plan, "current_period_end": period_end, "auto_renew": False, "reason": reason,
    }, now=now)


async def payment_refunded(invoice: Invoice, *, cause: str, amount: Money, full: bool, provider: str,
                           operation_id: str, now: datetime) -> None:
    """`cause`: the refund's own key (the reversal of an operation, or a partial refund's id)."""
    await emit(EventType.PAYMENT_REFUNDED, cause, {
        "invoice": invoice.label, "kind": invoice.kind.value, "user_id": invoice.user_id, "plan": invoice.plan,
        "order_id": invoice.order_id, "metadata": invoice.metadata, "provider": provider,
        "operation_id": operation_id, **_money(amount.minor, amount.currency), "full": full,
        "refunded_total": invoice.refunded_amount if not full else invoice.paid_amount,
    }, now=now)


async def payout_settled(label: str) -> None:
    """payout.paid or payout.failed for a claim in that final status; once per claim, outcome and round (an admin
    may send a failed claim again)."""
    if installed() is None:
        return
    claim = await PayoutClaim.find_one(PayoutClaim.label == label)
    if claim is None or claim.status not in PAYOUT_EVENTS:
        return
    await emit(PAYOUT_EVENTS[claim.status], f"{claim.label}:{claim.rounds}:{claim.status.value}", {
        "claim": claim.label, "user_id": claim.user_id, **_money(claim.amount, claim.currency),
        "method": claim.method.value, "konsol_id": claim.konsol_id, "reason": claim.failure_reason or "",
        "settled_at": claim.settled_at,
    }, now=claim.settled_at or utc_now())


async def part_refunded(label: str, key: str, amount: Money, *, provider: str, operation_id: str) -> None:
    """payment.refunded of one counted part of a payment, once per part (`key`, as counted on the invoice); a
    refund that makes the total whole is followed by its reversal's own full event."""
    if installed() is None:
        return
    invoice = await Invoice.find_one(Invoice.label == label)
    if invoice is not None:
        await payment_refunded(invoice, cause=f"part:{key}", amount=amount, full=False, provider=provider,
                               operation_id=operation_id, now=utc_now())
