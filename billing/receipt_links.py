"""The fiscal receipt's link on a payment, and the user's follow-up notice carrying it.

A provider returns the link of the receipt the tax authority registered (Payme's SetFiscalData `qr_code_url`,
Click's ofd_data `qrCodeURL`) at its own pace, often after the payment notice went out. The link is stored on
the ledger operation; the payment notice carries it when it is there by then (billing/notices.py), otherwise
a short follow-up notice sends it, once. Both sides re-check after their own step, so whichever comes second
sends it: the notice job looks for a link after marking the notice sent, and the link's arrival enqueues the
follow-up, which waits for the notice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from billing.clock import Clock
from billing.invoices import get_invoice
from billing.ledger import find_operation
from billing.plans import Catalogue
from billing.ports import NoticeQueue, Notifier, ReceiptNotice
from billing.steps import Checkpoint
from db import Operation, OperationStatus

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048


def receipt_url(value: object) -> str | None:
    """A link fit to show a payer: an absolute http(s) URL of printable ASCII without spaces; else None."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URL_LENGTH:
        return None
    if not value.isascii() or not value.isprintable() or " " in value:
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


async def attach_receipt(provider: str, operation_id: str, url: str) -> bool:
    """Store the receipt's link on the payment's ledger row; False when there is no such row (yet). The latest
    link the provider gave wins; the user hears of it once (receipt_notified_at)."""
    result = await Operation.get_motor_collection().update_one(
        {"provider": provider, "operation_id": operation_id}, {"$set": {"receipt_url": url}})
    return bool(result.matched_count == 1)


async def send_receipt_notice(provider: str, operation_id: str, *, notifier: Notifier, clock: Clock) -> bool:
    """Send the user the receipt's link unless the payment notice is still to go (it carries the link) or the link
    was sent already; True when sent now."""
    operation = await find_operation(provider, operation_id)
    if operation is None or operation.status is not OperationStatus.APPLIED or operation.receipt_url is None:
        return False
    if operation.notified_at is None or operation.receipt_notified_at is not None:
        return False
    invoice = await get_invoice(operation.label)
    await notifier.receipt_ready(ReceiptNotice(user_id=invoice.user_id, label=invoice.label, provider=provider,
                                               url=operation.receipt_url))
    await Operation.get_motor_collection().update_one(
        {"_id": operation.id, "receipt_notified_at": None}, {"$set": {"receipt_notified_at": clock()}})
    log.info("%s: the fiscal receipt's link was sent to user %s", operation.key, invoice.user_id)
    return True


@runtime_checkable
class ReceiptsAfterPayment(Protocol):
    """A provider whose fiscal receipt we submit once a payment is applied (Click's ofd_data/submit_items),
    as a job of its own (jobs.submit_fiscal_receipt) enqueued by fulfilment."""

    @property
    def submits_receipts(self) -> bool:
        """Whether receipts are switched on for this provider."""
        ...

    async def submit_receipt(self, operation_id: str, *, plans: Catalogue, notices: NoticeQueue, notifier: Notifier,
                             clock: Clock, checkpoint: Checkpoint) -> str:
        """Submit the receipt of the applied payment `operation_id` once, whatever the retries; its outcome."""
        ...


def submitting_receipts(providers: Mapping[str, Any]) -> frozenset[str]:
    """The names of the providers whose receipts fulfilment enqueues for submission."""
    return frozenset(name for name, provider in providers.items()
                     if isinstance(provider, ReceiptsAfterPayment) and provider.submits_receipts)
