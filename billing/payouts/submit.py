"""The payout job: create the konsol.pro payment for an accepted claim, at most once.

konsol.pro has no idempotency key, so the claim records every attempt before the call (`attempts`,
`attempt_state = in_flight`) and its outcome after it. A run of the job that finds an attempt whose outcome
is unknown (a timeout, a lost connection, a crash between the call and the record) looks the payout up by
the label in its purpose and never sends it again. Only an attempt that certainly created nothing
(unreachable, HTTP 429) is sent again, and one answered 5xx once a lookup found nothing. RQ retries the job
(CREATE_RETRIES, with growing delays); its last run gives up: `failed` when nothing can have been created,
else `unknown` (polled by label, admins told).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pymongo import ReturnDocument

from billing.clock import Clock, utc_now
from billing.payouts.cards import CardCipher, CardUnreadable
from billing.payouts.claims import get_claim, move
from billing.payouts.settle import alert_once, attach, poll_delay
from billing.ports import PayoutQueue
from billing.providers.konsol import (
    KonsolClient,
    KonsolOutcomeUnknown,
    KonsolRejected,
    KonsolServerError,
    KonsolUnavailable,
    payment_request,
)
from billing.steps import Checkpoint, no_checkpoint
from db.payouts import AttemptState, ClaimStatus, PayoutClaim, PayoutMethod

log = logging.getLogger(__name__)

CREATE_RETRIES = 3  # RQ retries of the job; with the first run, four runs in all
STEPS = ("before_create_request", "after_create_request")
LOOK_UP_FIRST = (AttemptState.IN_FLIGHT, AttemptState.OUTCOME_UNKNOWN, AttemptState.SERVER_ERROR)


@dataclass(frozen=True, slots=True)
class PayoutServices:
    """What payout jobs need from their process: konsol.pro's client, the card cipher and the queue."""

    konsol: KonsolClient
    cipher: CardCipher
    queue: PayoutQueue


class PayoutNotFoundYet(KonsolOutcomeUnknown):
    """An earlier attempt's outcome is unknown and konsol.pro does not show the payout (yet)."""


async def submit_payout(label: str, *, services: PayoutServices, clock: Clock = utc_now,
                        checkpoint: Checkpoint = no_checkpoint) -> str:
    claim = await get_claim(label)
    if claim.status is ClaimStatus.ACCEPTED:
        await move(label, ClaimStatus.ACCEPTED, ClaimStatus.CREATING, fields={"updated_at": clock()})
        claim = await get_claim(label)
    if claim.status is not ClaimStatus.CREATING:
        log.info("payout claim %s: nothing to create (%s)", label, claim.status.value)
        return claim.status.value
    runs = await _count_run(claim)
    try:
        return await _advance(claim, services, clock, checkpoint)
    except KonsolUnavailable as err:
        if runs <= CREATE_RETRIES:
            log.warning("payout claim %s: konsol.pro unavailable (%s); the job is retried", label, err)
            raise
        return await _give_up(await get_claim(label), str(err), services.queue, clock)


async def _count_run(claim: PayoutClaim) -> int:
    row = await PayoutClaim.get_motor_collection().find_one_and_update(
        {"label": claim.label}, {"$inc": {"job_runs": 1}}, projection={"job_runs": 1},
        return_document=ReturnDocument.AFTER)
    return int(row["job_runs"]) if row else claim.job_runs + 1


async def _advance(claim: PayoutClaim, services: PayoutServices, clock: Clock, checkpoint: Checkpoint) -> str:
    if claim.attempt_state in LOOK_UP_FIRST:
        found = await services.konsol.find_by_label(claim.label)
        if found is not None:
            await attach(claim, found, queue=services.queue, clock=clock)
            return "found"
        if claim.attempt_state is not AttemptState.SERVER_ERROR:
            raise PayoutNotFoundYet(f"the outcome of attempt {claim.attempts} is unknown and konsol.pro does not "
                                    "show the payout")
    return await _send(claim, services, clock, checkpoint)


async def _send(claim: PayoutClaim, services: PayoutServices, clock: Clock, checkpoint: Checkpoint) -> str:
    try:
        body = _request_body(claim, services.cipher)
    except CardUnreadable as err:
        return await _fail(claim, "card data expired or unreadable; the user should file the claim again",
                           services.queue, clock, log_detail=str(err))
    now = clock()
    recorded = await PayoutClaim.get_motor_collection().update_one(
        {"label": claim.label, "status": ClaimStatus.CREATING.value, "attempts": claim.attempts},
        {"$inc": {"attempts": 1}, "$set": {"attempt_state": AttemptState.IN_FLIGHT.value, "attempted_at": now}})
    if recorded.modified_count != 1:
        log.warning("payout claim %s: another run is sending it; this one stops", claim.label)
        return "busy"
    checkpoint("before_create_request")
    try:
        payment = await services.konsol.create_payment(body)
    except KonsolRejected as err:
        return await _fail(claim, err.message or f"konsol.pro refused it (HTTP {err.status})", services.queue, clock)
    except KonsolUnavailable as err:
        state = (AttemptState.OUTCOME_UNKNOWN if isinstance(err, KonsolOutcomeUnknown)
                 else AttemptState.SERVER_ERROR if isinstance(err, KonsolServerError) else AttemptState.NOT_SENT)
        await move(claim.label, ClaimStatus.CREATING, fields={"attempt_state": state.value, "updated_at": clock()})
        raise
    finally:
        del body
    checkpoint("after_create_request")
    await attach(claim, payment, queue=services.queue, clock=clock)
    return "submitted"


def _request_body(claim: PayoutClaim, cipher: CardCipher) -> dict[str, object]:
    """The request with the card number decrypted: it lives in this job's memory for the one call."""
    if claim.method is PayoutMethod.CARD:
        if not claim.card_encrypted:
            raise CardUnreadable("no stored card number")
        card_number: str | None = cipher.decrypt(claim.card_encrypted)
    else:
        card_number = None
    return payment_request(label=claim.label, amount=claim.amount, first_name=claim.payee_first_name,
                           last_name=claim.payee_last_name, card_number=card_number, phone=claim.phone,
                           bank_id=claim.bank_id)


async def _fail(claim: PayoutClaim, reason: str, queue: PayoutQueue, clock: Clock, log_detail: str = "") -> str:
    now = clock()
    if await move(claim.label, ClaimStatus.CREATING, ClaimStatus.FAILED,
                  fields={"failure_reason": reason[:500], "settled_at": now, "updated_at": now},
                  unset=("card_encrypted",)):
        log.warning("payout claim %s failed: %s %s", claim.label, reason, log_detail)
    if (await get_claim(claim.label)).status is ClaimStatus.FAILED:
        await queue.enqueue_payout_notice(claim.label, ClaimStatus.FAILED.value)
    return ClaimStatus.FAILED.value


async def _give_up(claim: PayoutClaim, error: str, queue: PayoutQueue, clock: Clock) -> str:
    """The last run: nothing can have been created → failed; else unknown, looked up by polling."""
    if claim.status is not ClaimStatus.CREATING:
        return claim.status.value
    if claim.attempts == 0 or claim.attempt_state is AttemptState.NOT_SENT:
        return await _fail(claim, "konsol.pro was unavailable; nothing was sent", queue, clock, log_detail=error)
    now = clock()
    if await move(claim.label, ClaimStatus.CREATING, ClaimStatus.UNKNOWN, fields={"updated_at": now, "poll_step": 0}):
        await alert_once(claim, "unknown", "konsol.pro may or may not have created this payout: check its cabinet, "
                         "then attach the payment id or mark the claim failed", queue)
        await queue.enqueue_payout_poll(claim.label, 0, poll_delay(0))
    return ClaimStatus.UNKNOWN.value
