"""Payout claims from filing to a decision: drafts the bot fills in, confirmation, Accept and Reject, expiry.

Every move is one conditional update whose filter names the status it leaves, so a double click, two
admins at once or a redelivered update decide a claim once; the loser reads who won.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from billing.errors import BillingError
from billing.money import Money
from billing.payouts.cards import CardCipher, card_tail
from billing.ports import PayoutNotice, PayoutQueue
from billing.providers.konsol import mask_card, mask_phone, scrub
from db.payouts import AdminDecision, ClaimStatus, PayoutClaim, PayoutMethod

log = logging.getLogger(__name__)

LABEL_PREFIX = "po_"
DRAFT_TTL = timedelta(hours=1)  # an unconfirmed draft (and its card) goes after an hour
CARD_TTL = timedelta(days=7)  # no stored card number outlives a week, whatever happens
MAX_REASON_LENGTH = 300
API_ADMIN_ID = 0  # decided_by of a decision made through the admin REST API


class ClaimNotFound(BillingError):
    pass


@dataclass(frozen=True, slots=True)
class Decision:
    won: bool  # this call made the decision; False: it was made before (see claim.decided_by_name)
    claim: PayoutClaim


def new_label() -> str:
    return LABEL_PREFIX + secrets.token_hex(8)


async def find_claim(label: str) -> PayoutClaim | None:
    return await PayoutClaim.find_one({"label": label})


async def get_claim(label: str) -> PayoutClaim:
    claim = await find_claim(label)
    if claim is None:
        raise ClaimNotFound(label)
    return claim


async def move(label: str, leaving: ClaimStatus | tuple[ClaimStatus, ...], to: ClaimStatus | None = None, *,
               fields: dict[str, Any] | None = None, unset: tuple[str, ...] = (),
               decision: AdminDecision | None = None, where: dict[str, Any] | None = None) -> bool:
    """leaving → to (or only `fields` when `to` is None), once: True for the caller whose update did it. An
    admin's `decision` is recorded by the same update; `where` narrows the filter further."""
    statuses = (leaving,) if isinstance(leaving, ClaimStatus) else leaving
    update: dict[str, Any] = {"$set": {**(fields or {}), **({"status": to.value} if to else {})}}
    if unset:
        update["$unset"] = dict.fromkeys(unset, "")
    if decision is not None:
        update["$push"] = {"decisions": {**decision.model_dump(), "action": decision.action.value}}
    result = await PayoutClaim.get_motor_collection().update_one(
        {"label": label, "status": {"$in": [status.value for status in statuses]}, **(where or {})}, update)
    return bool(result.modified_count == 1)


async def new_draft(*, user_id: int, first_name: str, last_name: str, language: str | None, amount: int,
                    cipher: CardCipher, queue: PayoutQueue, now: datetime, card_number: str | None = None,
                    phone: str | None = None, bank_id: str | None = None, bank_name: str | None = None) -> PayoutClaim:
    """A draft holding the destination (the full card number only encrypted, beside its mask), deleted
    after DRAFT_TTL unless confirmed."""
    label = new_label()
    claim = PayoutClaim(
        label=label, external_id=f"claim_{label}", user_id=user_id, payee_first_name=first_name[:64],
        payee_last_name=last_name[:64], language=language, amount=amount,
        method=PayoutMethod.CARD if card_number else PayoutMethod.FPS,
        card_mask=mask_card(card_number) if card_number else None,
        card_encrypted=cipher.encrypt(card_number) if card_number else None,
        phone=phone, bank_id=bank_id, bank_name=bank_name, created_at=now, updated_at=now,
    )
    await queue.enqueue_claim_expiry(label, int(DRAFT_TTL.total_seconds()))  # first: no draft without its expiry
    await claim.insert()
    return claim


async def confirm(label: str, user_id: int, now: datetime, queue: PayoutQueue) -> PayoutClaim | None:
    """draft → new for its own user; the admins are told. None when it is no draft of this user's."""
    result = await PayoutClaim.get_motor_collection().update_one(
        {"label": label, "user_id": user_id, "status": ClaimStatus.DRAFT.value},
        {"$set": {"status": ClaimStatus.NEW.value, "filed_at": now, "updated_at": now}})
    claim = await find_claim(label)
    if claim is None or claim.user_id != user_id or claim.status is not ClaimStatus.NEW:
        return None
    if result.modified_count == 1:
        log.info("payout claim %s filed by user %s: %s to %s", label, user_id, Money(claim.amount, claim.currency),
                 destination(claim))
    await queue.enqueue_payout_notice(label, "filed")  # again on a redelivery: the notice is sent once
    await queue.enqueue_claim_expiry(label, int(CARD_TTL.total_seconds()))
    return claim


async def discard_draft(label: str, user_id: int) -> bool:
    result = await PayoutClaim.get_motor_collection().delete_one(
        {"label": label, "user_id": user_id, "status": ClaimStatus.DRAFT.value})
    return bool(result.deleted_count == 1)


async def accept(label: str, *, by: int, by_name: str, now: datetime, queue: PayoutQueue) -> Decision:
    """new → accepted, and the payout job queued. Whoever presses while the claim waits in `accepted`
    queues it again (harmless), so a queue failure after the decision is mended by the next press."""
    won = await move(label, ClaimStatus.NEW, ClaimStatus.ACCEPTED,
                     fields={"decided_by": by, "decided_by_name": by_name[:64], "decided_at": now, "updated_at": now})
    claim = await get_claim(label)
    if claim.status is ClaimStatus.ACCEPTED:
        await queue.enqueue_payout(label)
        if won:
            log.info("payout claim %s accepted by %s", label, by)
            await queue.enqueue_payout_notice(label, "accepted")
    return Decision(won, claim)


async def reject(label: str, *, by: int, by_name: str, reason: str, now: datetime, queue: PayoutQueue) -> Decision:
    """new → rejected with the reason; the card number is erased and the user told."""
    won = await move(label, ClaimStatus.NEW, ClaimStatus.REJECTED,
                     fields={"decided_by": by, "decided_by_name": by_name[:64], "decided_at": now, "updated_at": now,
                             "settled_at": now, "reject_reason": scrub(reason.strip(), MAX_REASON_LENGTH)},
                     unset=("card_encrypted",))
    claim = await get_claim(label)
    if won:
        log.info("payout claim %s rejected by %s", label, by)
    if claim.status is ClaimStatus.REJECTED:
        await queue.enqueue_payout_notice(label, "rejected")
    return Decision(won, claim)


async def expire(label: str, now: datetime, queue: PayoutQueue) -> str:
    """Runs when a draft's or a claim's time for holding card data is up: an old draft goes, a claim never
    decided expires (the user is told), and no card number stays, whatever the status."""
    claim = await find_claim(label)
    if claim is None:
        return "gone"
    if claim.status is ClaimStatus.DRAFT:
        if now - claim.created_at >= DRAFT_TTL:
            await PayoutClaim.get_motor_collection().delete_one({"label": label, "status": ClaimStatus.DRAFT.value})
            return "draft deleted"
        return "draft kept"
    if now - (claim.filed_at or claim.created_at) < CARD_TTL:
        return "kept"
    if await move(label, ClaimStatus.NEW, ClaimStatus.EXPIRED, fields={"settled_at": now, "updated_at": now},
                  unset=("card_encrypted",)):
        await queue.enqueue_payout_notice(label, "expired")
    await PayoutClaim.get_motor_collection().update_one({"label": label}, {"$unset": {"card_encrypted": ""}})
    return (await get_claim(label)).status.value


async def list_claims(*, status: ClaimStatus | None = None, user_id: int | None = None,
                      method: PayoutMethod | None = None, page: int = 1, per_page: int = 50,
                      ) -> tuple[list[PayoutClaim], int]:
    """Newest first; drafts only when asked for by status."""
    query: dict[str, Any] = {"status": status.value} if status else {"status": {"$ne": ClaimStatus.DRAFT.value}}
    if user_id is not None:
        query["user_id"] = user_id
    if method is not None:
        query["method"] = method.value
    total = await PayoutClaim.find(query).count()
    rows = await PayoutClaim.find(query).sort("-created_at", "-_id").skip((page - 1) * per_page).limit(
        per_page).to_list()
    return rows, total


def destination(claim: PayoutClaim) -> str:
    """Where the money goes, as people may read it: "•••• 1111" or "+7******4567, Сбербанк"."""
    if claim.method is PayoutMethod.CARD and claim.card_mask:
        return card_tail(claim.card_mask)
    return f"{mask_phone(claim.phone or '')}, {claim.bank_name or claim.bank_id}"


def notice_for(claim: PayoutClaim, event: str, reason: str = "") -> PayoutNotice:
    return PayoutNotice(event=event, label=claim.label, user_id=claim.user_id,
                        amount=Money(claim.amount, claim.currency), destination=destination(claim),
                        reason=reason or claim.reject_reason or claim.failure_reason or "",
                        decided_by=claim.decided_by_name or "", konsol_id=claim.konsol_id or "")

