"""Promo and gift codes: validated definitions and the atomic claim of a use.

A use is claimed by one conditional update (`uses_left > 0`, not expired) together with the user's redemption
row (unique per user and code); a redemption that cannot be recorded gives its use back at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from billing.claims import claim
from billing.grants import grant
from billing.invoices import create_invoice, find_invoice
from billing.ledger import Ledger
from billing.money import MINOR_DIGITS
from billing.plans import Catalogue, Plan
from db import Invoice, InvoiceStatus
from db.promo import PromoCode, PromoKind, PromoRedemption

CODE_PATTERN = re.compile(r"[A-Z0-9_-]{4,32}")
MAX_USES = 1_000_000
MAX_AMOUNT_OFF = 10**12
MAX_GIFT_DAYS = 3660
MAX_PERCENT = 99  # 100% would make an invoice of zero, which no provider takes: give a gift code instead


class PromoInvalid(ValueError):
    """A definition or a code the user typed that is not acceptable; the message says why."""


class PromoRefused(Exception):
    """A well-formed code that cannot be used now: `reason` is unknown, expired, used_up, wrong_plan or
    already_used (a text key for the bot)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalise_code(text: str) -> str:
    code = text.strip().upper()
    if not CODE_PATTERN.fullmatch(code):
        raise PromoInvalid("code must be 4 to 32 letters A-Z, digits, '-' or '_'")
    return code


def _bounded_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PromoInvalid(f"{name} must be an integer from {low} to {high}")
    return value


@dataclass(frozen=True, slots=True)
class PromoDefinition:
    code: str
    kind: PromoKind
    max_uses: int
    plans: list[str]
    expires_at: datetime | None
    percent_off: int | None = None
    amounts_off: dict[str, int] | None = None
    gift_plan: str | None = None
    gift_days: int | None = None


def parse_definition(body: dict[str, Any], plan_names: list[str]) -> PromoDefinition:
    """An admin's JSON (or the bot's parsed command) into a definition; PromoInvalid names the bad field."""
    code = body.get("code")
    if not isinstance(code, str):
        raise PromoInvalid("code must be a string")
    kind_text = body.get("kind")
    if kind_text not in {kind.value for kind in PromoKind}:
        raise PromoInvalid("kind must be percent, fixed or gift")
    kind = PromoKind(kind_text)
    plans = body.get("plans", [])
    if not isinstance(plans, list) or not all(isinstance(name, str) and name in plan_names for name in plans):
        raise PromoInvalid(f"plans must be a list of plan names ({', '.join(plan_names)})")
    expires_at = body.get("expires_at")
    if expires_at is not None:
        try:
            expires_at = datetime.fromisoformat(expires_at) if isinstance(expires_at, str) else None
        except ValueError:
            expires_at = None
        if expires_at is None or expires_at.tzinfo is None:
            raise PromoInvalid("expires_at must be an ISO 8601 time with its UTC offset")
    common = PromoDefinition(code=normalise_code(code), kind=kind, plans=list(plans), expires_at=expires_at,
                             max_uses=_bounded_int(body.get("max_uses"), "max_uses", 1, MAX_USES))
    if kind is PromoKind.PERCENT:
        return replace(common, percent_off=_bounded_int(body.get("percent_off"), "percent_off", 1, MAX_PERCENT))
    if kind is PromoKind.FIXED:
        amounts = body.get("amounts_off")
        if not isinstance(amounts, dict) or not amounts or not all(currency in MINOR_DIGITS for currency in amounts):
            raise PromoInvalid("amounts_off must map currency codes to integer minor units")
        return replace(common, amounts_off={
            currency: _bounded_int(minor, f"amounts_off.{currency}", 1, MAX_AMOUNT_OFF)
            for currency, minor in amounts.items()})
    gift_plan = body.get("gift_plan")
    if not isinstance(gift_plan, str) or gift_plan not in plan_names:
        raise PromoInvalid(f"gift_plan must be one of {', '.join(plan_names)}")
    return replace(common, gift_plan=gift_plan,
                   gift_days=_bounded_int(body.get("gift_days"), "gift_days", 1, MAX_GIFT_DAYS))


class PromoExists(Exception):
    pass


async def create_code(definition: PromoDefinition, *, now: datetime) -> PromoCode:
    promo = PromoCode(code=definition.code, kind=definition.kind, percent_off=definition.percent_off,
                      amounts_off=definition.amounts_off, gift_plan=definition.gift_plan,
                      gift_days=definition.gift_days, plans=definition.plans, max_uses=definition.max_uses,
                      uses_left=definition.max_uses, expires_at=definition.expires_at, created_at=now)
    try:
        await promo.insert()
    except DuplicateKeyError:
        raise PromoExists(definition.code) from None
    return promo


async def find_code(text: str) -> PromoCode | None:
    return await PromoCode.find_one(PromoCode.code == normalise_code(text))


async def claim_use(text: str, user_id: int, plan: str, *, now: datetime) -> PromoCode:
    """Take one use of the code for this user and plan, atomically; PromoRefused says why not."""
    code = normalise_code(text)
    promo = await PromoCode.find_one(PromoCode.code == code)
    if promo is None:
        raise PromoRefused("unknown")
    if promo.plans and plan not in promo.plans:
        raise PromoRefused("wrong_plan")
    if promo.expires_at is not None and promo.expires_at <= now:
        raise PromoRefused("expired")
    live = {"code": code, "uses_left": {"$gt": 0},
            "$or": [{"expires_at": None}, {"expires_at": {"$gt": now}}]}
    taken = await PromoCode.get_motor_collection().update_one(live, {"$inc": {"uses_left": -1}})
    if taken.modified_count != 1:
        raise PromoRefused("used_up")
    try:
        await PromoRedemption(code=code, user_id=user_id, at=now).insert()
    except DuplicateKeyError:
        again = await PromoRedemption.get_motor_collection().update_one(  # its earlier invoice expired unpaid
            {"code": code, "user_id": user_id, "released": True},
            {"$set": {"released": False, "at": now, "label": None}})
        if again.modified_count != 1:
            await release_use(code)
            raise PromoRefused("already_used") from None
    return promo


def discounted(plan: Plan, promo: PromoCode) -> dict[str, int]:
    """The plan's prices with the discount, rounded down to whole minor units and never under one; a fixed
    code offers only the currencies it names."""
    if promo.kind is PromoKind.PERCENT:
        assert promo.percent_off is not None
        return {currency: max(1, minor * (100 - promo.percent_off) // 100) for currency, minor in plan.prices.items()}
    if promo.kind is PromoKind.FIXED:
        assert promo.amounts_off is not None
        return {currency: max(1, minor - promo.amounts_off[currency]) for currency, minor in plan.prices.items()
                if currency in promo.amounts_off}
    raise PromoRefused("gift")


async def discounted_invoice(text: str, plan: Plan, user_id: int, *, now: datetime, ttl_seconds: int) -> Invoice:
    """Claim a use, then a new invoice whose amounts are the discounted prices: every provider's check compares
    them. The use is counted now and given back by release_expired when the invoice expires unpaid."""
    promo = await claim_use(text, user_id, plan.name, now=now)
    amounts = discounted(plan, promo) if promo.kind is not PromoKind.GIFT else {}
    if not amounts:
        await _undo(promo.code, user_id)
        raise PromoRefused("gift" if promo.kind is PromoKind.GIFT else "wrong_plan")
    invoice = await create_invoice(plan, user_id, now=now, ttl_seconds=ttl_seconds, amounts=amounts,
                                   promo_code=promo.code)
    await PromoRedemption.get_motor_collection().update_one(
        {"code": promo.code, "user_id": user_id}, {"$set": {"label": invoice.label}})
    return invoice


RETIRED = "promo:expired"  # the final claim that retires an expired discounted invoice (billing/claims.py)


async def release_expired(now: datetime, limit: int = 500) -> int:
    """Give back the uses of redemptions whose invoice expired unpaid, once each.

    The invoice is first retired by a final claim, so a payment arriving after the release is `extra` money
    (refunded, never applied) and the limit holds; only then does the redemption's flag move (a conditional
    update) and the use return. A crash between the flag and the return loses that use: the safe side.
    """
    released = 0
    async for redemption in PromoRedemption.find({"released": False, "label": {"$ne": None}}).limit(limit):
        invoice = await find_invoice(redemption.label or "")
        if invoice is None or invoice.status is not InvoiceStatus.PENDING or invoice.expires_at > now:
            continue
        if not await claim(invoice.label, RETIRED, now=now):
            continue  # a payment holds it: it may still be paid
        flipped = await PromoRedemption.get_motor_collection().update_one(
            {"_id": redemption.id, "released": False}, {"$set": {"released": True}})
        if flipped.modified_count == 1:
            await release_use(redemption.code)
            released += 1
    return released


async def _undo(code: str, user_id: int) -> None:
    await PromoRedemption.get_motor_collection().delete_one({"code": code, "user_id": user_id})
    await release_use(code)


async def release_use(code: str) -> None:
    """Give a use back (a redemption refused after its use was taken, or whose invoice expired unpaid)."""
    await PromoCode.get_motor_collection().update_one({"code": code}, {"$inc": {"uses_left": 1}})


async def redemptions(code: str) -> list[PromoRedemption]:
    return await PromoRedemption.find(PromoRedemption.code == code).sort("at").to_list()


async def redeem_gift(promo: PromoCode, user_id: int, plans: Catalogue, ledger: Ledger, *, now: datetime,
                      ttl_seconds: int) -> Plan:
    """A gift code's days of its plan for this user, once (the bot's /promo and the payment page): the use is
    claimed first; the grant's label and operation derive from the code and the user, so a repeat after a crash
    between the two finishes the grant and never gives it twice. Raises PromoRefused("already_used")."""
    assert promo.gift_plan is not None and promo.gift_days is not None
    plan = replace(plans.get(promo.gift_plan), period_days=promo.gift_days)
    try:
        await claim_use(promo.code, user_id, plan.name, now=now)
    except PromoRefused as refused:
        if refused.reason != "already_used":
            raise
    result = await grant(ledger, plan, user_id, request_id=f"gift:{promo.code}:{user_id}", now=now,
                         ttl_seconds=ttl_seconds)
    if not result.fresh:
        raise PromoRefused("already_used")
    return plan
