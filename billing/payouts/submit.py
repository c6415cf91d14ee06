"""The payout job: create the konsol.pro payment for an accepted claim, at most once.

konsol.pro documents no idempotency key and no way to search its payouts, so a POST whose outcome is not
known is never sent again by the machine. The claim records each attempt before the call (`attempts`,
`attempt_state = in_flight`) and its outcome after it:
- a payment id: `submitted`, polled until konsol.pro settles it;
- certainly nothing made (connection refused before sending, HTTP 429): sent again by RQ's retries with
  growing delays (CREATE_RETRIES), then `failed`;
- konsol.pro refused it (400, 402, 422): `failed`, the user told;
- our credentials refused (401, 403): nothing was made; back to `accepted`, the admins told of a
  configuration error, sent again when an admin says so;
- anything else (a timeout, a dropped connection, 5xx, a status we do not know, a run that died
  mid-request): `unknown` at once, the admins told with the buttons that resolve it (resolve.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pymongo import ReturnDocument

from billing.clock import Clock, utc_now
from billing.events.changes import payout_settled
from billing.payouts.cards import CardCipher, CardUnreadable
from billing.payouts.claims import get_claim, move
from billing.payouts.settle import alert_once, attach
from billing.ports import PayoutQueue
from billing.providers.konsol import (
    KonsolAuthFailed,
    KonsolClient,
    KonsolNotSent,
    KonsolRejected,
    KonsolUnavailable,
    payment_request,
)
from billing.steps import Checkpoint, no_checkpoint
from db.payouts import AttemptState, ClaimStatus, PayoutClaim, PayoutMethod

log = logging.getLogger(__name__)

CREATE_RETRIES = 3  # RQ retries of a creation that certainly reached nothing; with the first run, four runs
STEPS = ("before_create_request", "after_create_request")
UNKNOWN_ADVICE = ("konsol.pro may or may not have made this payout. Look for it in konsol.pro's cabinet (its "
                  "purpose names the claim), then attach its payment id, or, only if it does not exist there, "
                  "mark the claim failed or send it again")


@dataclass(frozen=True, slots=True)
class PayoutServices:
    """What payout jobs need from their process: konsol.pro's client, the card cipher and the queue."""

    konsol: KonsolClient
    cipher: CardCipher
    queue: PayoutQueue


async def submit_payout(label: str, *, services: PayoutServices, clock: Clock = utc_now,
                        checkpoint: Checkpoint = no_checkpoint) -> str:
    claim = await get_claim(label)
    if claim.status is ClaimStatus.ACCEPTED:
        await move(label, ClaimStatus.ACCEPTED, ClaimStatus.CREATING, fields={"updated_at": clock()})
        claim = await get_claim(label)
    if claim.status is not ClaimStatus.CREATING:
        log.info("payout claim %s: nothing to create (%s)", label, claim.status.value)
        return claim.status.value
    if claim.attempt_state is AttemptState.IN_FLIGHT:  # a run died between the call and its record
        return await to_unknown(claim, "a run of the payout job ended while its request was under way",
                                services.queue, clock)
    runs = await _count_run(claim)
    try:
        return await _send(claim, services, clock, checkpoint)
    except KonsolNotSent as err:
        if runs <= CREATE_RETRIES:
            log.warning("payout claim %s: konsol.pro not reached (%s); the job is retried", label, err)
            raise
        return await _fail(claim, "konsol.pro was unavailable; nothing was sent", services.queue, clock,
                           log_detail=str(err))


async def _count_run(claim: PayoutClaim) -> int:
    row = await PayoutClaim.get_motor_collection().find_one_and_update(
        {"label": claim.label}, {"$inc": {"job_runs": 1}}, projection={"job_runs": 1},
        return_document=ReturnDocument.AFTER)
    return int(row["job_runs"]) if row else claim.job_runs + 1


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
    except KonsolAuthFailed as err:
        return await _credentials_refused(claim, err, services.queue, clock)
    except KonsolRejected as err:
        return await _fail(claim, err.message or f"konsol.pro refused it (HTTP {err.status})", services.queue, clock)
    except KonsolNotSent:
        await move(claim.label, ClaimStatus.CREATING,
                   fields={"attempt_state": AttemptState.NOT_SENT.value, "updated_at": clock()})
        raise
    except KonsolUnavailable as err:
        return await to_unknown(await get_claim(claim.label), str(err), services.queue, clock)
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


async def to_unknown(claim: PayoutClaim, detail: str, queue: PayoutQueue, clock: Clock) -> str:
    """creating → unknown at once: never sent again by itself; the admins get the buttons that resolve it."""
    now = clock()
    if await move(claim.label, ClaimStatus.CREATING, ClaimStatus.UNKNOWN,
                  fields={"attempt_state": AttemptState.OUTCOME_UNKNOWN.value, "unknown_since": now,
                          "updated_at": now}):
        log.warning("payout claim %s: outcome unknown (%s); left to the admins", claim.label, detail)
        await alert_once(claim, f"unknown:{claim.attempts}", f"{detail}. {UNKNOWN_ADVICE}", queue)
    return (await get_claim(claim.label)).status.value


async def _credentials_refused(claim: PayoutClaim, err: KonsolRejected, queue: PayoutQueue, clock: Clock) -> str:
    """401/403: our token, not the payout. Nothing was made, so the claim waits in `accepted` to be sent
    again once an admin has mended KONSOL_API_TOKEN (the alert's button, or POST .../resend)."""
    if await move(claim.label, ClaimStatus.CREATING, ClaimStatus.ACCEPTED,
                  fields={"attempt_state": AttemptState.NOT_SENT.value, "updated_at": clock()}):
        log.error("payout claim %s: konsol.pro refused our credentials (HTTP %s); check KONSOL_API_TOKEN",
                  claim.label, err.status)
        await alert_once(claim, f"config:{claim.attempts + 1}",
                         f"konsol.pro refused our credentials (HTTP {err.status}: {err.message or 'access denied'})."
                         " Check KONSOL_API_TOKEN; nothing was created, send the claim again once it is mended",
                         queue)
    return (await get_claim(claim.label)).status.value


async def _fail(claim: PayoutClaim, reason: str, queue: PayoutQueue, clock: Clock, log_detail: str = "") -> str:
    now = clock()
    if await move(claim.label, ClaimStatus.CREATING, ClaimStatus.FAILED,
                  fields={"failure_reason": reason[:500], "settled_at": now, "updated_at": now},
                  unset=("card_encrypted",)):
        log.warning("payout claim %s failed: %s %s", claim.label, reason, log_detail)
    if (await get_claim(claim.label)).status is ClaimStatus.FAILED:
        await payout_settled(claim.label)
        await queue.enqueue_payout_notice(claim.label, ClaimStatus.FAILED.value)
    return ClaimStatus.FAILED.value
