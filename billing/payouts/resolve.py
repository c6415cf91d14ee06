"""What admins decide when the machine cannot: attach konsol.pro's payment id, mark a claim failed, or send
it again. The bot's buttons and the admin API call these; each decision is one conditional update that also
records who made it (`PayoutClaim.decisions`), so of two admins deciding at once exactly one wins.

- attach (an `unknown` claim): the id is looked up at konsol.pro (a certain lookup, by its own id) and
  must be for the claim's amount. A lookup that fails keeps the id as the claim's candidate and checks it
  again later; the claim stays `unknown`, never `creating`.
- fail: an `unknown` claim, on the admin's word that the payout does not exist at konsol.pro; a claim
  konsol.pro holds (`submitted`, `needs_action`) only once konsol.pro no longer shows it as payable: cancel
  it in konsol.pro's cabinet first (its API has no cancel). Only then is the user told to file again.
- resend: an `unknown` claim, on the admin's word that the payout does not exist at konsol.pro; or a claim
  sent back to `accepted` because konsol.pro refused our credentials.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from pymongo.errors import DuplicateKeyError

from billing.clock import Clock
from billing.events.changes import payout_settled
from billing.payouts.claims import find_claim, get_claim, move
from billing.payouts.settle import apply_payment, attach, poll_delay
from billing.ports import PayoutQueue
from billing.providers.konsol import (
    KonsolClient,
    KonsolNotFound,
    KonsolRejected,
    KonsolUnavailable,
    PayoutState,
    scrub,
)
from db.payouts import OPEN_AT_KONSOL, AdminDecision, AttemptState, ClaimStatus, PayoutClaim, Resolution

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 64
PAYABLE = frozenset({PayoutState.PENDING, PayoutState.MANUAL, PayoutState.NEEDS_ACTION})
NOT_AT_KONSOL_WARNING = ("Only if this payout does not exist at konsol.pro: look for it in konsol.pro's cabinet "
                         "(its purpose names the claim) first. If it exists, it may still be paid, and the user "
                         "would be paid twice.")


class Result(StrEnum):
    DONE = "done"  # this call decided
    CHECKING = "checking"  # the id is kept and checked at konsol.pro later (it did not answer now)
    WRONG_STATE = "wrong_state"  # the claim is not (or no longer) in a state this decision applies to
    NOT_FOUND = "not_found"  # konsol.pro has no payment with this id
    AMOUNT_MISMATCH = "amount_mismatch"  # the payment is for another amount
    ID_TAKEN = "id_taken"  # another claim holds this payment
    STILL_PAYABLE = "still_payable"  # konsol.pro still shows the payout as one it may pay
    UNAVAILABLE = "unavailable"  # konsol.pro could not be asked; nothing changed


@dataclass(frozen=True, slots=True)
class Resolved:
    result: Result
    claim: PayoutClaim
    detail: str = ""


def decision(action: Resolution, by: int, by_name: str, clock: Clock, *, konsol_id: str | None = None,
             note: str = "") -> AdminDecision:
    return AdminDecision(action=action, by=by, by_name=by_name[:64], at=clock(), konsol_id=konsol_id,
                         note=scrub(note.strip(), 300))


async def attach_payment_id(label: str, konsol_id: str, *, by: int, by_name: str, konsol: KonsolClient,
                            queue: PayoutQueue, clock: Clock) -> Resolved:
    claim = await get_claim(label)
    konsol_id = konsol_id.strip()
    if claim.status is not ClaimStatus.UNKNOWN:
        return Resolved(Result.WRONG_STATE, claim)
    record = decision(Resolution.ATTACH, by, by_name, clock, konsol_id=konsol_id)
    try:
        payment = await konsol.get_payment(konsol_id)
    except KonsolNotFound:
        return Resolved(Result.NOT_FOUND, claim, f"konsol.pro has no payment {konsol_id}")
    except (KonsolUnavailable, KonsolRejected) as err:
        if not await move(label, ClaimStatus.UNKNOWN, fields={"candidate_id": konsol_id, "updated_at": clock()},
                          decision=record.model_copy(update={"note": "kept to be checked at konsol.pro"}),
                          where={"candidate_id": {"$exists": False}}):
            return Resolved(Result.WRONG_STATE, await get_claim(label))
        log.warning("payout claim %s: payment %s given by %s, to be checked (%s)", label, konsol_id, by, err)
        await queue.enqueue_payout_poll(label, 0, poll_delay(0), series=f"check:{konsol_id}")
        return Resolved(Result.CHECKING, await get_claim(label), str(err))
    if payment.amount != claim.amount:
        return Resolved(Result.AMOUNT_MISMATCH, claim,
                        f"konsol.pro's payment is for {payment.amount} kopecks, the claim for {claim.amount}")
    try:
        won = await attach(claim, payment, queue=queue, clock=clock, decision=record)
    except DuplicateKeyError:
        return Resolved(Result.ID_TAKEN, claim, "another claim holds this konsol.pro payment")
    if not won:
        return Resolved(Result.WRONG_STATE, await get_claim(label))
    log.info("payout claim %s: konsol.pro payment %s attached by %s", label, konsol_id, by)
    return Resolved(Result.DONE, await get_claim(label))


async def mark_failed(label: str, *, by: int, by_name: str, reason: str, konsol: KonsolClient, queue: PayoutQueue,
                      clock: Clock) -> Resolved:
    """The caller has shown the admin NOT_AT_KONSOL_WARNING and had it confirmed."""
    claim = await get_claim(label)
    record = decision(Resolution.FAIL, by, by_name, clock, konsol_id=claim.konsol_id, note=reason)
    if claim.status is ClaimStatus.UNKNOWN:
        return await _fail(claim, ClaimStatus.UNKNOWN, record, "marked failed by an admin: no payout at konsol.pro",
                           queue, clock)
    if claim.status not in OPEN_AT_KONSOL or not claim.konsol_id:
        return Resolved(Result.WRONG_STATE, claim)
    try:
        payment = await konsol.get_payment(claim.konsol_id)
    except KonsolNotFound:
        return await _fail(claim, OPEN_AT_KONSOL, record, "konsol.pro no longer shows the payout", queue, clock)
    except (KonsolUnavailable, KonsolRejected) as err:
        return Resolved(Result.UNAVAILABLE, claim, str(err))
    if payment.state in PAYABLE:
        return Resolved(Result.STILL_PAYABLE, claim, f"konsol.pro still reports {payment.status!r}: cancel the "
                        "payout in konsol.pro's cabinet first")
    if payment.state is not PayoutState.UNRECOGNISED:  # konsol.pro settled it: its word, not ours
        await apply_payment(claim, payment, queue=queue, clock=clock)
        return Resolved(Result.DONE, await get_claim(label), f"konsol.pro reports {payment.status!r}")
    return await _fail(claim, OPEN_AT_KONSOL, record, f"cancelled at konsol.pro ({payment.status})", queue, clock)


async def resend(label: str, *, by: int, by_name: str, queue: PayoutQueue, clock: Clock) -> Resolved:
    """unknown (the caller has had NOT_AT_KONSOL_WARNING confirmed) or accepted → accepted, queued as a new
    round of the payout job, which records and makes one new attempt."""
    claim = await get_claim(label)
    refused_credentials = claim.status is ClaimStatus.ACCEPTED and claim.attempt_state is AttemptState.NOT_SENT
    if claim.status is not ClaimStatus.UNKNOWN and not refused_credentials:
        return Resolved(Result.WRONG_STATE, claim)
    round_ = claim.rounds + 1
    where = {"rounds": claim.rounds, **({"attempt_state": AttemptState.NOT_SENT.value} if refused_credentials else {})}
    if not await move(label, claim.status, ClaimStatus.ACCEPTED,
                      fields={"rounds": round_, "job_runs": 0, "updated_at": clock()},
                      unset=("attempt_state", "candidate_id", "unknown_since"),
                      decision=decision(Resolution.RESEND, by, by_name, clock), where=where):
        return Resolved(Result.WRONG_STATE, await get_claim(label))
    log.warning("payout claim %s sent again by %s (round %s)", label, by, round_)
    await queue.enqueue_payout(label, round_)
    return Resolved(Result.DONE, await get_claim(label))


async def _fail(claim: PayoutClaim, leaving: ClaimStatus | tuple[ClaimStatus, ...], record: AdminDecision,
                reason: str, queue: PayoutQueue, clock: Clock) -> Resolved:
    now = clock()
    if not await move(claim.label, leaving, ClaimStatus.FAILED,
                      fields={"failure_reason": reason, "settled_at": now, "updated_at": now},
                      unset=("card_encrypted", "candidate_id"), decision=record):
        current = await find_claim(claim.label)
        return Resolved(Result.WRONG_STATE, current or claim)
    log.warning("payout claim %s marked failed by %s: %s", claim.label, record.by, reason)
    await payout_settled(claim.label)
    await queue.enqueue_payout_notice(claim.label, ClaimStatus.FAILED.value)
    return Resolved(Result.DONE, await get_claim(claim.label))
