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
from db import Invoice, InvoiceStatus, Operation
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


@dataclass(frozen=True, slots=True)
class PaidPayment:
    """A paid invoice with the payment that paid it and the provider that can take it back."""

    invoice: Invoice
    provider: Any
    operation: Operation


async def paid_payment(label: str, *, providers: Mapping[str, Any]) -> PaidPayment:
    """Raises InvoiceNotFound, NotPaid, and NoRefundApi when the provider has no refund API here."""
    invoice = await get_invoice(label)
    if invoice.status is not InvoiceStatus.PAID or invoice.paid_by is None:
        raise NotPaid(invoice.status.value)
    provider_name, _, operation_id = invoice.paid_by.partition(":")
    provider = providers.get(provider_name)
    operation = await find_operation(provider_name, operation_id)
    if getattr(provider, "refund", None) is None or operation is None:
        raise NoRefundApi(f"{provider_name} has no refund API here; refund the payer by hand")
    return PaidPayment(invoice, provider, operation)


async def refund_payment(paid: PaidPayment, *, queues: ReversalQueue, reason: str) -> RefundOutcome:
    """The whole payment back. Raises NoRefundApi (RefundUnsupported's message included), and the provider's
    ProviderRejected / ProviderUnavailable unchanged."""
    invoice, operation = paid.invoice, paid.operation
    try:
        result = await paid.provider.refund(operation_id=operation.operation_id,
                                            amount=Money(operation.amount, operation.currency), label=invoice.label)
    except RefundUnsupported as err:
        raise NoRefundApi(str(err) or "refund the payer by hand") from err
    if isinstance(result, RefundResult) and result.status is RefundStatus.PENDING:
        return RefundOutcome(invoice, pending=True, tracked=await find_refund(operation.provider, result.refund_id))
    await queues.enqueue_reversal(operation.provider, operation.operation_id, reason)
    return RefundOutcome(invoice, pending=False)


async def refund_invoice(label: str, *, providers: Mapping[str, Any], queues: ReversalQueue,
                         reason: str) -> RefundOutcome:
    """The whole payment of a paid invoice back: paid_payment then refund_payment, with their errors."""
    return await refund_payment(await paid_payment(label, providers=providers), queues=queues, reason=reason)
