"""successful_payment_callback: apply one recorded operation exactly once, whatever the redeliveries or crashes.

The unique (provider, operation_id) row comes first; every later step is a conditional update
keyed by the operation, so running the job again after a crash at any step finishes the work
without doing any of it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime

from billing import claims
from billing.clock import Clock, utc_now
from billing.consent import keep_consented_method
from billing.errors import OperationNotRecorded
from billing.events.changes import payment_applied
from billing.invoices import mark_paid
from billing.ledger import find_operation
from billing.ports import NoticeQueue
from billing.providers.base import Outcome
from billing.reversal import undo_operation
from billing.steps import Checkpoint, no_checkpoint
from billing.subscriptions import extend
from db import Invoice, Operation, OperationStatus

log = logging.getLogger(__name__)

STEPS = ("after_ledger_insert", "after_invoice_update", "after_subscription_update", "after_settle",
         "before_notification")


async def successful_payment_callback(
    provider: str,
    operation_id: str,
    label: str,
    *,
    notices: NoticeQueue,
    clock: Clock = utc_now,
    checkpoint: Checkpoint = no_checkpoint,
    receipts_after_payment: Collection[str] = frozenset(),
) -> Outcome:
    """`receipts_after_payment`: the providers whose fiscal receipt is submitted once the payment is applied
    (billing/receipt_links.py); its job is enqueued with the notice, and again on a rerun (it runs once)."""
    operation = await find_operation(provider, operation_id)
    if operation is None or operation.label != label:
        raise OperationNotRecorded(f"{provider}:{operation_id} for {label}")
    checkpoint("after_ledger_insert")
    if operation.status is OperationStatus.EXTRA:
        notices.enqueue_extra_from_job(provider, operation_id)
        return Outcome.EXTRA
    if operation.status is OperationStatus.APPLIED:
        await payment_applied(operation, clock())  # recorded once: a crash after the settle left it to this run
        _ensure_notice(operation, notices, checkpoint)
        _ensure_receipt(operation, notices, receipts_after_payment)
        return Outcome.DUPLICATE
    if operation.status is OperationStatus.REVERSED:
        await undo_operation(operation, clock(), notices)
        return Outcome.DUPLICATE
    if operation.status is not OperationStatus.RECORDED:
        log.info("%s not fulfilled: status %s", operation.key, operation.status.value)
        return Outcome.DUPLICATE
    now = clock()
    invoice = await _pay_invoice(operation, label, now)
    checkpoint("after_invoice_update")
    if invoice is None:
        if await _settle(operation, OperationStatus.EXTRA, now):
            log.warning("%s paid invoice %s, which another payment had claimed: kept as extra for a refund",
                        operation.key, label)
        notices.enqueue_extra_from_job(provider, operation_id)
        return Outcome.EXTRA
    if invoice.plan is not None and invoice.period_days is not None:  # an order or a donation grants nothing
        await extend(invoice.user_id, invoice.plan, invoice.period_days, by=operation.key, now=now,
                     ends_at=operation.period_end)
        await keep_consented_method(invoice, operation)  # only under the payer's consent (billing/consent.py)
    checkpoint("after_subscription_update")
    if not await _settle(operation, OperationStatus.APPLIED, now):
        overtaken = await find_operation(provider, operation_id)
        if overtaken is not None and overtaken.status is OperationStatus.REVERSED:
            log.info("%s was reversed while being applied; taking it back", operation.key)
            await undo_operation(overtaken, now, notices)
            return Outcome.DUPLICATE
    checkpoint("after_settle")
    await payment_applied(operation, now)  # payment.succeeded, subscription.activated or .renewed (billing/events)
    _ensure_notice(operation, notices, checkpoint)
    _ensure_receipt(operation, notices, receipts_after_payment)
    log.info("%s applied to invoice %s", operation.key, label)
    return Outcome.ACCEPTED


async def _pay_invoice(operation: Operation, label: str, now: datetime) -> Invoice | None:
    """The invoice `operation` paid, or None when another payment holds it. The request that recorded the
    operation claimed the invoice for it (Ledger._claim_or_extra), so paying is one conditional write; only when
    that final claim is not there (the request stopped between its writes, a hold not yet made final) is the
    invoice claimed here first."""
    async def pay() -> Invoice | None:
        return await mark_paid(label, by=operation.key, provider=operation.provider, amount=operation.amount,
                               currency=operation.currency, now=now)

    invoice = await pay()
    if invoice is None and await claims.claim(label, operation.key, now=now):
        invoice = await pay()
    return invoice


async def _settle(operation: Operation, status: OperationStatus, now: datetime) -> bool:
    """recorded → applied/extra; False when the operation left `recorded` meanwhile (a rerun, a reversal)."""
    result = await Operation.get_motor_collection().update_one(
        {"_id": operation.id, "status": OperationStatus.RECORDED.value},
        {"$set": {"status": status.value, "applied_at": now}},
    )
    operation.status = status
    return result.modified_count == 1


def _ensure_notice(operation: Operation, notices: NoticeQueue, checkpoint: Checkpoint) -> None:
    if operation.status is OperationStatus.APPLIED and operation.notified_at is None:
        checkpoint("before_notification")
        notices.enqueue_payment_notice(operation.provider, operation.operation_id)


def _ensure_receipt(operation: Operation, notices: NoticeQueue, receipts_after_payment: Collection[str]) -> None:
    if operation.status is OperationStatus.APPLIED and operation.provider in receipts_after_payment:
        notices.enqueue_fiscal_receipt(operation.provider, operation.operation_id)
