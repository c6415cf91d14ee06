"""The operation ledger: a verified event is checked against its invoice, recorded once, and queued.

This is what a notification route calls after the provider module proved the event authentic.
Every database or queue failure becomes LedgerUnavailable, which the route turns into an answer
that makes the provider deliver again; a redelivery finds the recorded row and enqueues again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from pymongo.errors import DuplicateKeyError, PyMongoError

from billing.clock import Clock, utc_now
from billing.errors import LedgerUnavailable
from billing.invoices import find_invoice
from billing.ports import FulfilmentQueue
from billing.providers.base import EventKind, Outcome, VerifiedEvent
from billing.money import Money
from db import Invoice, InvoiceStatus, Operation, OperationStatus

log = logging.getLogger(__name__)

STRANDED_BATCH = 500
_REJECTION = {
    Outcome.UNKNOWN_LABEL: "unknown_label",
    Outcome.WRONG_CURRENCY: "wrong_currency",
    Outcome.WRONG_AMOUNT: "wrong_amount",
}


class Ledger:
    def __init__(self, queue: FulfilmentQueue, clock: Clock = utc_now) -> None:
        self._queue = queue
        self._clock = clock

    async def record(self, event: VerifiedEvent) -> Outcome:
        if event.kind is EventKind.TEST:
            log.info("%s test notification %s received; nothing to do", event.provider, event.operation_id)
            return Outcome.TEST
        try:
            return await self._record(event)
        except PyMongoError as err:
            raise LedgerUnavailable(f"database: {type(err).__name__}") from err

    async def requeue_stranded(self, min_age: timedelta, limit: int = STRANDED_BATCH) -> int:
        """Enqueue again the recorded operations whose job is gone (a Redis restart without persistence, a
        job deleted by hand): unfinished and older than `min_age`. Enqueues are idempotent, so this is safe
        to run from every web process on a timer. Returns how many it sent round."""
        cutoff = self._clock() - min_age
        unfinished = {"$or": [
            {"status": OperationStatus.RECORDED.value},
            {"status": OperationStatus.APPLIED.value, "notified_at": None},
        ], "recorded_at": {"$lte": cutoff}}
        try:
            stranded = await Operation.find(unfinished).sort("recorded_at").limit(limit).to_list()
            for operation in stranded:
                await self._queue.enqueue_fulfilment(operation.provider, operation.operation_id, operation.label)
        except PyMongoError as err:
            raise LedgerUnavailable(f"database: {type(err).__name__}") from err
        if stranded:
            log.info("sent %d unfinished operation(s) round again", len(stranded))
        return len(stranded)

    async def _record(self, event: VerifiedEvent) -> Outcome:
        invoice = await find_invoice(event.label) if event.label else None
        verdict = _check_against(invoice, event.amount)
        if verdict is not None:
            await self._insert(event, OperationStatus.REJECTED, reason=_REJECTION[verdict])
            log.warning(
                "%s operation %s for label %r rejected: %s (paid %s); kept for review",
                event.provider, event.operation_id, event.label, verdict.value, event.amount,
            )
            return verdict
        status = OperationStatus.HELD if event.kind is EventKind.HELD else OperationStatus.RECORDED
        operation, fresh = await self._insert(event, status)
        if operation.status is OperationStatus.HELD and event.kind is EventKind.PAYMENT:
            operation = await self._release(operation)
        if operation.status is OperationStatus.HELD:
            log.info("%s operation %s held: money not yet available", event.provider, event.operation_id)
            if fresh:
                await self._queue.enqueue_hold_notice(operation.provider, operation.operation_id)
            return Outcome.HELD
        if _unfinished(operation):
            await self._queue.enqueue_fulfilment(operation.provider, operation.operation_id, operation.label)
        return Outcome.ACCEPTED if fresh else Outcome.DUPLICATE

    async def _insert(
        self, event: VerifiedEvent, status: OperationStatus, reason: str | None = None
    ) -> tuple[Operation, bool]:
        """Insert the row for (provider, operation_id), or return the one already there."""
        operation = Operation(
            provider=event.provider,
            operation_id=event.operation_id,
            label=event.label,
            amount=event.amount.minor,
            currency=event.amount.currency,
            net_amount=event.net_amount.minor if event.net_amount else None,
            status=status,
            reason=reason,
            payment_method=event.payment_method,
            payment_token=event.payment_token,
            recorded_at=self._clock(),
        )
        try:
            await operation.insert()
            return operation, True
        except DuplicateKeyError:
            existing = await find_operation(event.provider, event.operation_id)
            if existing is None:  # the unique index said it exists; only a concurrent delete could hide it
                raise LedgerUnavailable("operation vanished between insert and read") from None
            return existing, False

    async def _release(self, operation: Operation) -> Operation:
        """held → recorded when the provider reports the same operation as available."""
        await Operation.get_motor_collection().update_one(
            {"_id": operation.id, "status": OperationStatus.HELD.value},
            {"$set": {"status": OperationStatus.RECORDED.value}},
        )
        released = await find_operation(operation.provider, operation.operation_id)
        assert released is not None
        return released


def _unfinished(operation: Operation) -> bool:
    """Not yet applied, or applied but its notice never went out (a crash between the two)."""
    return operation.status is OperationStatus.RECORDED or (
        operation.status is OperationStatus.APPLIED and operation.notified_at is None
    )


def _check_against(invoice: Invoice | None, amount: Money) -> Outcome | None:
    if invoice is None:
        return Outcome.UNKNOWN_LABEL
    expected = invoice.amounts.get(amount.currency)
    if expected is None:
        return Outcome.WRONG_CURRENCY
    if amount.minor < expected:
        return Outcome.WRONG_AMOUNT
    return None


async def check_payable(label: str, amount: Money, *, exact: bool = False) -> Outcome | None:
    """For a provider's pre-payment check (Payme CheckPerformTransaction, Click Prepare, CloudPayments
    Check): None when the invoice may be paid with `amount`, else why not. `exact` refuses overpayment."""
    invoice = await find_invoice(label) if label else None
    if invoice is not None and invoice.status is not InvoiceStatus.PENDING:
        return Outcome.ALREADY_PAID
    verdict = _check_against(invoice, amount)
    if verdict is not None or invoice is None:
        return verdict
    if exact and amount.minor != invoice.amounts[amount.currency]:
        return Outcome.WRONG_AMOUNT
    return None


async def find_operation(provider: str, operation_id: str) -> Operation | None:
    return await Operation.find_one(Operation.provider == provider, Operation.operation_id == operation_id)
