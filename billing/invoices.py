"""Invoices: created with the plan's amounts fixed, found by label, paid once."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import ReturnDocument

from billing.errors import InvoiceNotFound
from billing.links import signed_pay_url
from billing.plans import Plan
from db import Invoice, InvoiceStatus

LABEL_PREFIX = "inv_"


def new_label() -> str:
    """ASCII, unguessable, well under YooMoney's 64 characters; safe in every provider's field."""
    return LABEL_PREFIX + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class PayLink:
    invoice: Invoice
    url: str
    expires_at: int


async def create_invoice(
    plan: Plan, user_id: int, *, now: datetime, ttl_seconds: int, label: str | None = None,
    amounts: dict[str, int] | None = None, promo_code: str | None = None, renewal: bool = False,
) -> Invoice:
    """A new invoice; a given `label` (derived from a request id, for idempotency) raises DuplicateKeyError
    when that invoice exists already. `amounts` (a promo code's discounted prices) replace the plan's.
    `renewal`: the invoice of a renewal charge (ours, CloudPayments' or Telegram's), not a payer's choice."""
    invoice = Invoice(
        label=label or new_label(),
        user_id=user_id,
        plan=plan.name,
        amounts=dict(plan.prices if amounts is None else amounts),
        period_days=plan.period_days,
        promo_code=promo_code,
        renewal=renewal,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    await invoice.insert()
    return invoice


def pay_link(
    invoice: Invoice, *, base_url: str, key: bytes, now: datetime, ttl_seconds: int, lang: str | None = None
) -> PayLink:
    """A signed link valid for the link TTL, never past the invoice's own expiry; `lang` (signed too)
    picks the payment page's language."""
    expires_at = int(min(now + timedelta(seconds=ttl_seconds), invoice.expires_at).timestamp())
    return PayLink(invoice, signed_pay_url(base_url, key, invoice.label, expires_at, lang), expires_at)


async def reusable_invoice(plan: Plan, user_id: int, *, now: datetime, min_remaining: timedelta) -> Invoice | None:
    """The user's newest pending invoice for this plan at the plan's current prices that stays payable
    for at least `min_remaining`; a repeated /subscribe hands it out again instead of piling up new ones. One a
    payment has claimed (billing/claims.py) is being paid: it is not handed out again."""
    candidates = Invoice.find(
        Invoice.user_id == user_id, Invoice.plan == plan.name, Invoice.status == InvoiceStatus.PENDING,
        Invoice.expires_at > now + min_remaining, Invoice.claimed_by == None,  # noqa: E711 - a query, not a test
    ).sort("-created_at")
    invoice: Invoice  # what beanie's cursor yields; its __aiter__ is not annotated
    async for invoice in candidates:
        if invoice.amounts == plan.prices and invoice.period_days == plan.period_days:
            return invoice
    return None


async def invoice_for(
    plan: Plan, user_id: int, *, now: datetime, ttl_seconds: int, min_remaining: timedelta
) -> Invoice:
    """A reusable pending invoice (see reusable_invoice), else a new one from create_invoice."""
    existing = await reusable_invoice(plan, user_id, now=now, min_remaining=min_remaining)
    return existing or await create_invoice(plan, user_id, now=now, ttl_seconds=ttl_seconds)


async def get_invoice(label: str) -> Invoice:
    invoice = await Invoice.find_one(Invoice.label == label)
    if invoice is None:
        raise InvoiceNotFound(label)
    return invoice


async def find_invoice(label: str) -> Invoice | None:
    return await Invoice.find_one(Invoice.label == label)


async def mark_paid(label: str, *, by: str, provider: str, amount: int, currency: str, now: datetime
                    ) -> Invoice | None:
    """pending → paid, once, by the operation whose final claim holds it (billing/claims.py; a hold is made final
    first). The invoice when this operation paid it (now or in an earlier, interrupted run), else None. The
    update answers with the invoice it wrote, so fulfilment needs no second read of it."""
    written = await Invoice.get_motor_collection().find_one_and_update(
        {"label": label, "status": InvoiceStatus.PENDING.value, "claimed_by": by, "claim_until": None},
        {"$set": {
            "status": InvoiceStatus.PAID.value, "paid_by": by, "provider": provider, "paid_at": now,
            "paid_amount": amount, "paid_currency": currency,
        }},
        return_document=ReturnDocument.AFTER,
    )
    if written is not None:
        paid: Invoice = Invoice.model_validate(written)
        return paid
    invoice = await get_invoice(label)
    return invoice if invoice.paid_by == by else None


async def mark_refunded(label: str, *, by: str, now: datetime) -> None:
    """paid → refunded, only for the operation that paid it; repeating it changes nothing."""
    await Invoice.get_motor_collection().update_one(
        {"label": label, "status": InvoiceStatus.PAID.value, "paid_by": by},
        {"$set": {"status": InvoiceStatus.REFUNDED.value, "refunded_at": now}},
    )


async def count_refund(label: str, key: str, amount: int) -> bool:
    """Add a part refunded (billing/partial_refunds.py) to the invoice's refunded total, once per key and never
    past the paid amount; True when counted now."""
    invoice = await get_invoice(label)
    if invoice.paid_amount is None:
        return False
    result = await Invoice.get_motor_collection().update_one(
        {"label": label, "status": InvoiceStatus.PAID.value, "refund_keys": {"$ne": key},
         "refunded_amount": {"$lte": invoice.paid_amount - amount}},
        {"$inc": {"refunded_amount": amount}, "$push": {"refund_keys": key}},
    )
    return result.modified_count == 1


async def refunded_in_full(label: str) -> bool:
    invoice = await get_invoice(label)
    return invoice.paid_amount is not None and invoice.refunded_amount >= invoice.paid_amount


@dataclass(frozen=True, slots=True)
class Offer:
    plan: Plan
    link: PayLink


@dataclass(frozen=True, slots=True)
class LinkIssuer:
    """Invoices and their signed payment links as /subscribe hands them out: for the bot itself, the jobs that
    write to users (renewal reminders, expiry notices) and the owner's own bot (billing/owner_rpc.py)."""

    base_url: str
    key: bytes
    link_ttl_seconds: int
    invoice_ttl_seconds: int
    min_remaining: timedelta

    async def offer(self, plan: Plan, user_id: int, *, now: datetime, lang: str | None = None) -> Offer:
        """The user's invoice for this plan (a pending one reused while it stays payable) and a fresh link."""
        invoice = await invoice_for(plan, user_id, now=now, ttl_seconds=self.invoice_ttl_seconds,
                                    min_remaining=self.min_remaining)
        return Offer(plan, pay_link(invoice, base_url=self.base_url, key=self.key, now=now,
                                    ttl_seconds=self.link_ttl_seconds, lang=lang))

    async def offers(self, plans: Iterable[Plan], user_id: int, *, now: datetime, lang: str | None = None
                     ) -> list[Offer]:
        """One offer per plan: what /subscribe shows."""
        return [await self.offer(plan, user_id, now=now, lang=lang) for plan in plans]

    async def link_for(self, plan: Plan, user_id: int, *, now: datetime, lang: str | None = None) -> str:
        return (await self.offer(plan, user_id, now=now, lang=lang)).link.url
