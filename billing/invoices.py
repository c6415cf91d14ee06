"""Invoices: created with the plan's amounts fixed, found by label, paid once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

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


async def create_invoice(plan: Plan, user_id: int, *, now: datetime, ttl_seconds: int) -> Invoice:
    invoice = Invoice(
        label=new_label(),
        user_id=user_id,
        plan=plan.name,
        amounts=dict(plan.prices),
        period_days=plan.period_days,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    await invoice.insert()
    return invoice


def pay_link(invoice: Invoice, *, base_url: str, key: bytes, now: datetime, ttl_seconds: int) -> PayLink:
    """A signed link valid for the link TTL, never past the invoice's own expiry."""
    expires_at = int(min(now + timedelta(seconds=ttl_seconds), invoice.expires_at).timestamp())
    return PayLink(invoice, signed_pay_url(base_url, key, invoice.label, expires_at), expires_at)


async def get_invoice(label: str) -> Invoice:
    invoice = await Invoice.find_one(Invoice.label == label)
    if invoice is None:
        raise InvoiceNotFound(label)
    return invoice


async def find_invoice(label: str) -> Invoice | None:
    return await Invoice.find_one(Invoice.label == label)


async def mark_paid(label: str, *, by: str, provider: str, amount: int, currency: str, now: datetime) -> bool:
    """pending → paid, once. True when this operation paid it (now or in an earlier, interrupted run)."""
    result = await Invoice.get_motor_collection().update_one(
        {"label": label, "status": InvoiceStatus.PENDING.value},
        {"$set": {
            "status": InvoiceStatus.PAID.value, "paid_by": by, "provider": provider, "paid_at": now,
            "paid_amount": amount, "paid_currency": currency,
        }},
    )
    if result.modified_count == 1:
        return True
    invoice = await get_invoice(label)
    return invoice.paid_by == by


async def mark_refunded(label: str, *, by: str, now: datetime) -> None:
    """paid → refunded, only for the operation that paid it; repeating it changes nothing."""
    await Invoice.get_motor_collection().update_one(
        {"label": label, "status": InvoiceStatus.PAID.value, "paid_by": by},
        {"$set": {"status": InvoiceStatus.REFUNDED.value, "refunded_at": now}},
    )
