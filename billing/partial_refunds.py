"""Refunds of part of a payment, where the provider allows them (YooKassa, CloudPayments): through the admin API's
POST /api/invoices/{label}/refund with {"amount": minor}.

Each part has a key: the owner's own `refund_id` when given, else one derived from the invoice's refunded total
before it and the amount, so a retried request asks the provider with the same idempotency key and is counted
once. A part is added to the invoice's `refunded_amount` only when the provider says it succeeded (at once, or
later for a pending one, tracked as every pending refund is: billing/refunds.py), by one conditional update that
names the key as not yet counted and the room left. The part that brings the total to the paid amount makes the
refund a full one: the payment is then reversed as any refunded payment (billing/reversal.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from billing.events.changes import part_refunded
from billing.invoices import count_refund, refunded_in_full
from billing.money import Money
from billing.providers.base import RefundUnsupported
from billing.refunds import RefundResult, RefundStatus
from db import Invoice, InvoiceStatus, Operation

log = logging.getLogger(__name__)

FULL_IN_PARTS = "refunded in full, in parts"


class PartialRefundUnsupported(RefundUnsupported):
    """The provider takes a payment back in full only (Payme's receipts.cancel) or not at all."""


class RefundTooLarge(ValueError):
    """More than what is left of the payment."""


@dataclass(frozen=True, slots=True)
class PartRefunded:
    result: RefundResult
    key: str
    counted: bool  # added to the invoice's refunded total now
    full: bool  # the total now equals the paid amount: the payment is to be reversed


def refundable(invoice: Invoice) -> int:
    """Minor units of the paid amount not yet given back."""
    return (invoice.paid_amount or 0) - invoice.refunded_amount if invoice.status is InvoiceStatus.PAID else 0


def part_key(operation: Operation, invoice: Invoice, amount: int, refund_id: str | None) -> str:
    return f"{operation.key}:{refund_id}" if refund_id else f"{operation.key}:{invoice.refunded_amount}+{amount}"


async def refund_part(provider: Any, invoice: Invoice, operation: Operation, amount: int,
                      refund_id: str | None = None) -> PartRefunded:
    """Ask the provider for a part of the payment back and count it once it succeeded. Raises
    PartialRefundUnsupported, RefundTooLarge, or the provider's ProviderRejected / ProviderUnavailable."""
    if amount > refundable(invoice):
        raise RefundTooLarge(f"only {refundable(invoice)} of {invoice.paid_amount} minor units are left to refund")
    refund_in_part = getattr(provider, "refund_part", None)
    if refund_in_part is None:
        raise PartialRefundUnsupported(f"{operation.provider} refunds a payment in full only, or by hand")
    key = part_key(operation, invoice, amount, refund_id)
    if key in invoice.refund_keys:  # a repeat of a part counted already (full: a reversal lost to a crash)
        await part_refunded(invoice.label, key, Money(amount, operation.currency), provider=operation.provider,
                            operation_id=operation.operation_id)  # recorded once: a crash may have come before it
        return PartRefunded(RefundResult(RefundStatus.SUCCEEDED), key, counted=False,
                            full=await refunded_in_full(invoice.label))
    result: RefundResult = await refund_in_part(operation_id=operation.operation_id,
                                                amount=Money(amount, operation.currency), label=invoice.label, key=key)
    counted = result.status is RefundStatus.SUCCEEDED and await count_refund(invoice.label, key, amount)
    if counted:
        await part_refunded(invoice.label, key, Money(amount, operation.currency), provider=operation.provider,
                            operation_id=operation.operation_id)
    full = counted and await refunded_in_full(invoice.label)
    log.info("%s: part refund %s of %s %s (%s)", invoice.label, key, amount, operation.currency, result.status.value)
    return PartRefunded(result, key, counted=counted, full=full)
