"""A payout's outcome, from konsol.pro's own API: webhooks and polling share `apply_payment`.

A webhook is only a reason to look: the payment is re-fetched with our token, its amount checked
against the claim, and its status mapped. A final status is first recorded in the operation ledger
under ("konsol", "<payment id>:<status>") (unique), then the claim moves once by a conditional update,
then the notice is queued (its job and its deliveries are keyed, so a repeat sends nothing twice).
Webhooks give up after ~5 s [DOC], so every payout konsol.pro holds is also polled until it settles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pymongo.errors import DuplicateKeyError

from billing.clock import Clock
from billing.payouts.claims import find_claim, move
from billing.ports import PayoutQueue
from billing.providers.konsol import (
    NAME,
    KonsolClient,
    KonsolPayment,
    KonsolRejected,
    KonsolUnavailable,
    PayoutState,
    WebhookAnswer,
)
from db import Operation, OperationStatus
from db.payouts import FINAL_STATUSES, OPEN_AT_KONSOL, ClaimStatus, PayoutClaim

log = logging.getLogger(__name__)

POLL_DELAYS = (60, 300, 900)  # then hourly
POLL_HOURLY = 3600
POLL_LIMIT = timedelta(days=7)
FINAL_TARGETS = {PayoutState.PAID: ClaimStatus.PAID, PayoutState.FAILED: ClaimStatus.FAILED,
                 PayoutState.CANCELLED: ClaimStatus.CANCELLED}


class Applied(StrEnum):
    APPLIED = "applied"  # the claim moved, or nothing was due
    DUPLICATE = "duplicate"  # already so
    CONFLICT = "conflict"  # konsol.pro reports another outcome than the one recorded: admins told
    MISMATCH = "amount_mismatch"  # konsol.pro's amount is not the claim's: nothing changed, admins told


def poll_delay(step: int) -> int:
    return POLL_DELAYS[step] if step < len(POLL_DELAYS) else POLL_HOURLY


async def alert_once(claim: PayoutClaim, kind: str, detail: str, queue: PayoutQueue) -> None:
    """Queue an admin alert unless this claim raised this one before."""
    result = await PayoutClaim.get_motor_collection().update_one(
        {"label": claim.label, "alerts": {"$ne": kind}}, {"$addToSet": {"alerts": kind}})
    if result.modified_count == 1:
        log.warning("payout claim %s: %s (%s)", claim.label, kind, detail)
    await queue.enqueue_payout_notice(claim.label, f"alert:{kind}", detail)  # the job id makes it once


async def apply_payment(claim: PayoutClaim, payment: KonsolPayment, *, queue: PayoutQueue, clock: Clock) -> Applied:
    """Bring the claim in line with the payment konsol.pro reports (fetched by us, never taken from a webhook)."""
    if payment.amount != claim.amount:
        await alert_once(claim, f"amount_mismatch:{payment.id}",
                         f"konsol.pro reports {payment.amount} kopecks, the claim is for {claim.amount}", queue)
        return Applied.MISMATCH
    state, now = payment.state, clock()
    target = FINAL_TARGETS.get(state)
    if claim.status in FINAL_STATUSES:
        if target is claim.status:
            await queue.enqueue_payout_notice(claim.label, target.value)  # a crash may have come between
            return Applied.DUPLICATE
        await alert_once(claim, f"conflict:{payment.status}",
                         f"konsol.pro now reports {payment.status!r}, the claim is {claim.status.value}", queue)
        return Applied.CONFLICT
    if claim.status not in OPEN_AT_KONSOL:
        return Applied.DUPLICATE
    fields = {"konsol_status": payment.status, "updated_at": now}
    if target is not None:
        await record_outcome(claim, payment, now)
        reason = payment.error_message or (f"konsol.pro: {payment.status}" if target is ClaimStatus.FAILED else "")
        if reason:
            fields["failure_reason"] = reason
        won = await move(claim.label, OPEN_AT_KONSOL, target, fields={**fields, "settled_at": now},
                         unset=("card_encrypted",))
        settled = await find_claim(claim.label)
        if settled is not None and settled.status is target:
            await queue.enqueue_payout_notice(claim.label, target.value)
        if won:
            log.info("payout claim %s %s (konsol.pro %s %s)", claim.label, target.value, payment.id, payment.status)
        return Applied.APPLIED if won else Applied.DUPLICATE
    if state is PayoutState.NEEDS_ACTION:
        if await move(claim.label, ClaimStatus.SUBMITTED, ClaimStatus.NEEDS_ACTION, fields=fields):
            await alert_once(claim, f"needs_action:{payment.status}",
                             payment.error_message or f"konsol.pro reports {payment.status}", queue)
        return Applied.APPLIED
    if state is PayoutState.PENDING:
        await move(claim.label, ClaimStatus.NEEDS_ACTION, ClaimStatus.SUBMITTED, fields=fields)
    await move(claim.label, OPEN_AT_KONSOL, fields=fields)
    if state is PayoutState.MANUAL:
        await alert_once(claim, "manualpay", "konsol.pro waits for a confirmation in its cabinet", queue)
    elif state is PayoutState.UNRECOGNISED:
        await alert_once(claim, f"status:{payment.status[:32]}", f"konsol.pro reports {payment.status!r}", queue)
    return Applied.APPLIED


async def record_outcome(claim: PayoutClaim, payment: KonsolPayment, now: datetime, status: str | None = None) -> None:
    """The ledger row of a payout's final outcome: once per (payment, status), whatever the deliveries. It
    stays `recorded`: a payout is money going out, never fulfilled like a payment."""
    try:
        await Operation(provider=NAME, operation_id=f"{payment.id}:{status or payment.status}", label=claim.label,
                        amount=claim.amount, currency=claim.currency, status=OperationStatus.RECORDED,
                        reason=f"payout {status or payment.status}", recorded_at=now).insert()
    except DuplicateKeyError:
        pass


@dataclass(frozen=True, slots=True)
class WebhookResult:
    answer: WebhookAnswer
    claim: PayoutClaim | None = None
    fetched: KonsolPayment | None = None


async def handle_webhook(payment_id: str, *, konsol: KonsolClient, queue: PayoutQueue, clock: Clock) -> WebhookResult:
    """An authenticated webhook named `payment_id`: find its claim, re-fetch the payment, apply it.
    Database and queue failures propagate (the route answers 503, konsol.pro delivers again)."""
    claim = await PayoutClaim.find_one({"konsol_id": payment_id})
    if claim is None:
        log.warning("konsol.pro webhook for payment %s, which no claim holds (an unknown claim may)", payment_id)
        return WebhookResult(WebhookAnswer.UNKNOWN_PAYMENT)
    try:
        payment = await konsol.get_payment(payment_id)
    except (KonsolUnavailable, KonsolRejected) as err:
        log.error("konsol.pro webhook for claim %s: could not re-fetch payment %s: %s", claim.label, payment_id, err)
        return WebhookResult(WebhookAnswer.RETRY, claim)
    applied = await apply_payment(claim, payment, queue=queue, clock=clock)
    answer = {Applied.MISMATCH: WebhookAnswer.AMOUNT_MISMATCH, Applied.DUPLICATE: WebhookAnswer.DUPLICATE}.get(
        applied, WebhookAnswer.OK)
    return WebhookResult(answer, claim, payment)


async def attach(claim: PayoutClaim, payment: KonsolPayment, *, queue: PayoutQueue, clock: Clock) -> bool:
    """creating/unknown → submitted with konsol.pro's id: the card number is erased, polling starts, and a
    payment already settled is applied at once."""
    now = clock()
    won = await move(claim.label, (ClaimStatus.CREATING, ClaimStatus.UNKNOWN), ClaimStatus.SUBMITTED,
                     fields={"konsol_id": payment.id, "konsol_status": payment.status, "submitted_at": now,
                             "updated_at": now, "poll_step": 0},
                     unset=("card_encrypted", "attempt_state"))
    if not won:
        return False
    log.info("payout claim %s is konsol.pro payment %s (%s)", claim.label, payment.id, payment.status)
    await queue.enqueue_payout_poll(claim.label, 0, poll_delay(0))
    submitted = await find_claim(claim.label)
    if submitted is not None and payment.state is not PayoutState.PENDING:
        await apply_payment(submitted, payment, queue=queue, clock=clock)
    return True


async def poll(label: str, step: int, *, konsol: KonsolClient, queue: PayoutQueue, clock: Clock) -> str:
    """One look at an unsettled payout (or, for an `unknown` claim, a lookup by its label), then the next
    look scheduled: +1, +5, +15 minutes, then hourly, for up to a week."""
    claim = await find_claim(label)
    if claim is None or claim.status not in (*OPEN_AT_KONSOL, ClaimStatus.UNKNOWN):
        return claim.status.value if claim else "gone"
    try:
        if claim.status is ClaimStatus.UNKNOWN:
            found = await konsol.find_by_label(label)
            if found is not None:
                await attach(claim, found, queue=queue, clock=clock)
        elif claim.konsol_id:
            await apply_payment(claim, await konsol.get_payment(claim.konsol_id), queue=queue, clock=clock)
    except (KonsolUnavailable, KonsolRejected) as err:
        log.warning("payout claim %s: konsol.pro not asked this time (%s); next look scheduled", label, err)
    claim = await find_claim(label)
    if claim is None or claim.status not in (*OPEN_AT_KONSOL, ClaimStatus.UNKNOWN):
        return claim.status.value if claim else "gone"
    now = clock()
    if now - (claim.submitted_at or claim.attempted_at or claim.created_at) >= POLL_LIMIT:
        await _give_up_polling(claim, now, queue)
        return "gave up"
    await queue.enqueue_payout_poll(label, step + 1, poll_delay(step + 1))
    return claim.status.value


async def _give_up_polling(claim: PayoutClaim, now: datetime, queue: PayoutQueue) -> None:
    if claim.status is ClaimStatus.UNKNOWN:
        await alert_once(claim, "unknown_for_a_week", "konsol.pro never showed this payout; settle it by hand", queue)
        return
    if claim.konsol_id:
        await record_outcome(claim, KonsolPayment(claim.konsol_id, "timeout", claim.amount), now)
    if await move(claim.label, OPEN_AT_KONSOL, ClaimStatus.FAILED,
                  fields={"failure_reason": "timeout", "settled_at": now, "updated_at": now}):
        await queue.enqueue_payout_notice(claim.label, ClaimStatus.FAILED.value)
        await alert_once(claim, "timeout", "konsol.pro did not settle the payout within a week", queue)
