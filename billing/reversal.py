"""reverse_payment: undo one payment (refund, provider-side cancel) exactly once, crash-safe like fulfilment.

The operation is marked `reversed` first; the undo steps after it are each conditional on the
operation (the invoice leaves `paid` only for the operation that paid it, the subscription gives
back only the period that operation added), so they can run any number of times: after a crash,
and from fulfilment too when a reversal overtakes it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from billing import claims
from billing.clock import Clock, utc_now
from billing.errors import OperationNotRecorded
from billing.events.changes import payment_refunded
from billing.invoices import get_invoice, mark_refunded
from billing.ledger import find_operation
from billing.money import Money
from billing.ports import NoticeQueue
from billing.steps import Checkpoint, no_checkpoint
from billing.subscriptions import take_back
from db import Operation, OperationStatus

log = logging.getLogger(__name__)

REVERSAL_STEPS = ("after_operation_update", "after_invoice_update", "after_subscription_update",
                  "before_notification")
REVERSIBLE = (OperationStatus.RECORDED, OperationStatus.HELD, OperationStatus.EXTRA, OperationStatus.APPLIED)


async def reverse_payment(
    provider: str,
    operation_id: str,
    *,
    reason: str,
    notices: NoticeQueue,
    clock: Clock = utc_now,
    checkpoint: Checkpoint = no_checkpoint,
) -> bool:
    """True when this call reversed the payment; False when it was reversed already or cannot be."""
    operation = await find_operation(provider, operation_id)
    if operation is None:
        raise OperationNotRecorded(f"{provider}:{operation_id}")
    now = clock()
    first = False
    if operation.status in REVERSIBLE:
        result = await Operation.get_motor_collection().update_one(
            {"_id": operation.id, "status": operation.status.value},
            {"$set": {"status": OperationStatus.REVERSED.value, "reversed_at": now, "reversal_reason": reason,
                      "reversed_from": operation.status.value}},
        )
        first = result.modified_count == 1
        operation = await find_operation(provider, operation_id) or operation
    if operation.status is not OperationStatus.REVERSED:
        return False
    checkpoint("after_operation_update")
    await undo_operation(operation, now, notices, checkpoint)
    if first:
        log.info("%s reversed (%s)", operation.key, reason)
    return first


async def undo_operation(
    operation: Operation, now: datetime, notices: NoticeQueue, checkpoint: Checkpoint = no_checkpoint
) -> None:
    """Take back what a reversed operation had applied, if anything; safe to repeat."""
    invoice = await get_invoice(operation.label)
    if invoice.paid_by != operation.key:
        await claims.release(invoice.label, operation.key)  # a recorded or held payment reversed before it paid
        if _told_of(operation):
            checkpoint("before_notification")
            notices.enqueue_reversal_notice(operation.provider, operation.operation_id)
        return
    await mark_refunded(invoice.label, by=operation.key, now=now)
    checkpoint("after_invoice_update")
    if invoice.period_days is not None:  # an order or a donation added no period
        await take_back(invoice.user_id, invoice.period_days, by=operation.key, now=now)
    checkpoint("after_subscription_update")
    await payment_refunded(invoice, cause=f"reversal:{operation.key}", amount=Money(operation.amount,
                           operation.currency), full=True, provider=operation.provider,
                           operation_id=operation.operation_id, now=operation.reversed_at or now)
    if operation.reversal_notified_at is None:
        checkpoint("before_notification")
        notices.enqueue_reversal_notice(operation.provider, operation.operation_id)


def _told_of(operation: Operation) -> bool:
    """A held payment that never paid the invoice is still told of when it ends: the admins heard of the hold."""
    return operation.reversed_from is OperationStatus.HELD and operation.reversal_notified_at is None
