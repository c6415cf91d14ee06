"""A payout's outcome, from konsol.pro's own API: webhooks and polling share `apply_payment`.

A webhook is only a reason to look: the payment is re-fetched with our token, its amount checked
against the claim, and its status mapped. A final status is first recorded in the operation ledger
under ("konsol", "<payment id>:<status>") (unique), then the claim moves once by a conditional update,
then the notice is queued (its job and its deliveries are keyed, so a repeat sends nothing twice).
Webhooks give up after ~5 s [DOC], so every payout konsol.pro holds is also polled until it settles, with
growing intervals and no end: a payout konsol.pro may still pay (a payee's tax registration, a cabinet
confirmation, funds) is never given up by the machine. Past POLL_DEADLINE the admins are told, and they
decide (billing/payouts/resolve.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pymongo.errors import DuplicateKeyError

from billing.clock import Clock
from billing.events.changes import payout_settled
from billing.payouts.claims import find_claim, move
from billing.ports import PayoutQueue
from billing.providers.konsol import (
    NAME,
    KonsolClient,
    KonsolNotFound,
    KonsolPayment,
    KonsolRejected,
    KonsolUnavailable,
    PayoutState,
    WebhookAnswer,
    claim_label,
)
from db import Operation, OperationStatus
from db.payouts import FINAL_STATUSES, OPEN_AT_KONSOL, AdminDecision, ClaimStatus, PayoutClaim

log = logging.getLogger(__name__)

POLL_DELAYS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600)  # then daily, until konsol.pro settles it
POLL_DAILY = 24 * 3600
POLL_DEADLINE = timedelta(days=7)  # then the admins are told (once) and decide
FINAL_TARGETS = {PayoutState.PAID: ClaimStatus.PAID, PayoutState.FAILED: ClaimStatus.FAILED,
                 PayoutState.CANCELLED: ClaimStatus.CANCELLED}


class Applied(StrEnum):
    APPLIED = "applied"  # the claim moved, or nothing was due
    DUPLICATE = "duplicate"  # already so
    CONFLICT = "conflict"  # konsol.pro reports another outcome than the one recorded: admins told
    MISMATCH = "amount_mismatch"  # konsol.pro's amount is not the claim's: nothing changed, admins told


def poll_delay(step: int) -> int:
    return POLL_DELAYS[step] if step < len(POLL_DELAYS) else POLL_DAILY


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
            await payout_settled(claim.label)  # recorded once: a crash may have come between
            await queue.enqueue_payout_notice(claim.label, target.value)
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
            await payout_settled(claim.label)  # payout.paid / payout.failed (billing/events)
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
    """The ledger row of a payout's final outcome: once per (payment, status), whatever the deliveries. It is
    finished when written (`payout`): money going out is never fulfilled like a customer's payment, and the
    sweep of unfinished payments must not take it for one."""
    try:
        await Operation(provider=NAME, operation_id=f"{payment.id}:{status or payment.status}", label=claim.label,
                        amount=claim.amount, currency=claim.currency, status=OperationStatus.PAYOUT,
                        reason=f"payout {status or payment.status}", recorded_at=now).insert()
    except DuplicateKeyError:
        pass


@dataclass(frozen=True, slots=True)
class WebhookResult:
    answer: WebhookAnswer
    claim: PayoutClaim | None = None
    fetched: KonsolPayment | None = None


async def handle_webhook(payment_id: str, *, konsol: KonsolClient, queue: PayoutQueue, clock: Clock) -> WebhookResult:
    """An authenticated webhook named `payment_id`: find its claim, re-fetch the payment, apply it. A payment
    no claim holds may be the lost answer of an `unknown` claim: konsol.pro's own record of that id, read
    with our token, names the claim in its purpose, and is attached when the amount agrees.
    Database and queue failures propagate (the route answers 503, konsol.pro delivers again)."""
    claim = await PayoutClaim.find_one({"konsol_id": payment_id})
    try:
        payment = await konsol.get_payment(payment_id)
    except KonsolNotFound:
        log.warning("konsol.pro webhook for payment %s, which konsol.pro does not know", payment_id)
        return WebhookResult(WebhookAnswer.UNKNOWN_PAYMENT, claim)
    except (KonsolUnavailable, KonsolRejected) as err:
        log.error("konsol.pro webhook for payment %s: could not re-fetch it: %s", payment_id, err)
        return WebhookResult(WebhookAnswer.RETRY, claim)
    if claim is None:
        claim = await _unknown_claim_of(payment)
        if claim is None:
            log.warning("konsol.pro webhook for payment %s, which no claim holds", payment_id)
            return WebhookResult(WebhookAnswer.UNKNOWN_PAYMENT, fetched=payment)
        await attach(claim, payment, queue=queue, clock=clock)
        return WebhookResult(WebhookAnswer.OK, claim, payment)
    applied = await apply_payment(claim, payment, queue=queue, clock=clock)
    answer = {Applied.MISMATCH: WebhookAnswer.AMOUNT_MISMATCH, Applied.DUPLICATE: WebhookAnswer.DUPLICATE}.get(
        applied, WebhookAnswer.OK)
    return WebhookResult(answer, claim, payment)


async def _unknown_claim_of(payment: KonsolPayment) -> PayoutClaim | None:
    label = claim_label(payment)
    claim = await find_claim(label) if label else None
    if claim is None or claim.status is not ClaimStatus.UNKNOWN:
        return None
    if payment.amount != claim.amount:
        log.warning("konsol.pro payment %s names claim %s but is for %s kopecks, not %s", payment.id, claim.label,
                    payment.amount, claim.amount)
        return None
    return claim


async def attach(claim: PayoutClaim, payment: KonsolPayment, *, queue: PayoutQueue, clock: Clock,
                 decision: AdminDecision | None = None) -> bool:
    """creating/unknown → submitted with konsol.pro's id: the card number is erased, polling starts, and a
    payment already settled is applied at once. Raises DuplicateKeyError when another claim holds the id."""
    now = clock()
    won = await move(claim.label, (ClaimStatus.CREATING, ClaimStatus.UNKNOWN), ClaimStatus.SUBMITTED,
                     fields={"konsol_id": payment.id, "konsol_status": payment.status, "submitted_at": now,
                             "updated_at": now, "poll_step": 0},
                     unset=("card_encrypted", "attempt_state", "candidate_id"), decision=decision)
    if not won:
        return False
    log.info("payout claim %s is konsol.pro payment %s (%s)", claim.label, payment.id, payment.status)
    await queue.enqueue_payout_poll(claim.label, 0, poll_delay(0))
    submitted = await find_claim(claim.label)
    if submitted is not None and payment.state is not PayoutState.PENDING:
        await apply_payment(submitted, payment, queue=queue, clock=clock)
    return True


async def poll(label: str, step: int, *, konsol: KonsolClient, queue: PayoutQueue, clock: Clock) -> str:
    """One look at a payout konsol.pro holds, by its id, then the next look scheduled (growing intervals, no
    end while it may still be paid; past POLL_DEADLINE the admins are told once). An `unknown` claim is
    looked at only through the id an admin gave (`candidate_id`); without one there is nothing certain to
    ask, and it waits for the admins. A lookup that fails changes nothing but the time of the next one."""
    claim = await find_claim(label)
    if claim is None:
        return "gone"
    if claim.status is ClaimStatus.UNKNOWN and claim.candidate_id:
        return await _check_candidate(claim, step, konsol=konsol, queue=queue, clock=clock)
    if claim.status not in OPEN_AT_KONSOL or not claim.konsol_id:
        return claim.status.value
    try:
        await apply_payment(claim, await konsol.get_payment(claim.konsol_id), queue=queue, clock=clock)
    except (KonsolUnavailable, KonsolRejected) as err:
        log.warning("payout claim %s: konsol.pro not asked this time (%s); next look scheduled", label, err)
    claim = await find_claim(label)
    if claim is None or claim.status not in OPEN_AT_KONSOL:
        return claim.status.value if claim else "gone"
    if clock() - (claim.submitted_at or claim.created_at) >= POLL_DEADLINE:
        await alert_once(claim, "overdue", f"konsol.pro still reports {claim.konsol_status!r}; it may still pay "
                         "it. Cancel it in konsol.pro's cabinet, then mark the claim failed", queue)
    await queue.enqueue_payout_poll(label, step + 1, poll_delay(step + 1))
    return claim.status.value


async def _check_candidate(claim: PayoutClaim, step: int, *, konsol: KonsolClient, queue: PayoutQueue,
                           clock: Clock) -> str:
    """The id an admin gave for an `unknown` claim, looked up until konsol.pro answers about it."""
    candidate = claim.candidate_id or ""
    try:
        payment = await konsol.get_payment(candidate)
    except KonsolNotFound:
        await move(claim.label, ClaimStatus.UNKNOWN, fields={"updated_at": clock()}, unset=("candidate_id",),
                   where={"candidate_id": candidate})
        await alert_once(claim, f"candidate_not_found:{candidate[:40]}",
                         f"konsol.pro has no payment {candidate}; the claim stays unknown", queue)
        return "not found"
    except (KonsolUnavailable, KonsolRejected) as err:
        log.warning("payout claim %s: payment %s not checked this time (%s)", claim.label, candidate, err)
        await queue.enqueue_payout_poll(claim.label, step + 1, poll_delay(step + 1), series=f"check:{candidate}")
        return ClaimStatus.UNKNOWN.value
    if payment.amount != claim.amount:
        await move(claim.label, ClaimStatus.UNKNOWN, fields={"updated_at": clock()}, unset=("candidate_id",),
                   where={"candidate_id": candidate})
        await alert_once(claim, f"amount_mismatch:{payment.id}",
                         f"konsol.pro reports {payment.amount} kopecks, the claim is for {claim.amount}", queue)
        return "amount mismatch"
    try:
        await attach(claim, payment, queue=queue, clock=clock)  # the admin's decision was recorded when given
    except DuplicateKeyError:
        await move(claim.label, ClaimStatus.UNKNOWN, fields={"updated_at": clock()}, unset=("candidate_id",))
        await alert_once(claim, f"id_taken:{candidate[:40]}", f"another claim holds konsol.pro payment {candidate}",
                         queue)
        return "id taken"
    return ClaimStatus.SUBMITTED.value
