"""Two-stage payments: a hold the provider authorised waits for an admin's confirm, from the admin API or the
bot's button, which captures it through the provider's confirm API and then releases it in the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.errors import BillingError
from billing.invoices import get_invoice
from billing.ledger import Ledger
from billing.money import Money
from billing.providers.base import EventKind, VerifiedEvent
from db import Invoice, InvoiceStatus, Operation, OperationStatus


class NothingToConfirm(BillingError):
    """No payment of this invoice awaits confirmation."""


class ConfirmUnsupported(BillingError):
    """The holding provider has no confirm API here."""


async def confirm_hold(label: str, *, providers: Mapping[str, Any], ledger: Ledger) -> Invoice:
    """Capture the held payment of invoice `label`, then release it for fulfilment.

    The provider's own Confirm notification releases the same operation, so it is applied once either way.
    Raises NothingToConfirm, ConfirmUnsupported, ProviderRejected, ProviderUnavailable or LedgerUnavailable
    (confirmed at the provider; the payment is then applied when its notification arrives).
    """
    invoice = await get_invoice(label)
    held = await Operation.find_one({"label": invoice.label, "status": OperationStatus.HELD.value})
    if invoice.status is not InvoiceStatus.PENDING or held is None:
        raise NothingToConfirm(label)
    confirm = getattr(providers.get(held.provider), "confirm", None)
    if confirm is None:
        raise ConfirmUnsupported(held.provider)
    amount = Money(held.amount, held.currency)
    await confirm(operation_id=held.operation_id, amount=amount, label=invoice.label)
    await ledger.record(VerifiedEvent(held.provider, held.operation_id, held.label, amount, EventKind.PAYMENT))
    return invoice
