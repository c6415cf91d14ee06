"""Refund a paid invoice through its provider: the one function the admin API and the admin dashboard call.

The provider call carries an idempotency key derived from the operation, so repeating it is safe; the reversal is
idempotent too. A refund the provider accepted as pending reverses nothing yet: it is tracked (billing/refunds.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from billing.invoices import get_invoice
from billing.ledger import find_operation
from billing.money import Money
from billing.providers.base import RefundUnsupported
from billing.refunds import RefundResult, RefundStatus, find_refund
from db import Invoice, InvoiceStatus
from db.refunds import ProviderRefund


class NotPaid(Exception):
    """The invoice is not paid (pending, expired or already refunded)."""


class NoRefundApi(Exception):
    """The provider cannot refund here; the payer is refunded by hand."""


class ReversalQueue(Protocol):
    async def enqueue_reversal(self, provider: str, operation_id: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    invoice: Invoice
    pending: bool  # the provider accepted it as pending: tracked, reversed once it succeeds
    tracked: ProviderRefund | None = None


async def refund_invoice(label: str, *, providers: Mapping[str, Any], queues: ReversalQueue,
                         reason: str) -> RefundOutcome:
    """Raises InvoiceNotFound, NotPaid, NoRefundApi (RefundUnsupported's message included), and the provider's
    ProviderRejected / ProviderUnavailable unchanged."""
    invoice = await get_invoice(label)
    if invoice.status is not InvoiceStatus.PAID or invoice.paid_by is None:
        raise NotPaid(invoice.status.value)
    provider_name, _, operation_id = invoice.paid_by.partition(":")
    provider = providers.get(provider_name)
    operation = await find_operation(provider_name, operation_id)
    refund = getattr(provider, "refund", None)
    if refund is None or operation is None:
        raise NoRefundApi(f"{provider_name} has no refund API here; refund the payer by hand")
    try:
        result = await refund(operation_id=operation_id, amount=Money(operation.amount, operation.currency),
                              label=invoice.label)
    except RefundUnsupported as err:
        raise NoRefundApi(str(err) or "refund the payer by hand") from err
    if isinstance(result, RefundResult) and result.status is RefundStatus.PENDING:
        return RefundOutcome(invoice, pending=True, tracked=await find_refund(provider_name, result.refund_id))
    await queues.enqueue_reversal(provider_name, operation_id, reason)
    return RefundOutcome(invoice, pending=False)
