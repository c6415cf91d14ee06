"""The operation ledger: a verified event is checked against its invoice, recorded once, and queued.

This is what a notification route calls after the provider module proved the event authentic.
Every database or queue failure becomes LedgerUnavailable, which the route turns into an answer
that makes the provider deliver again; a redelivery finds the recorded row and enqueues again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pymongo.errors import DuplicateKeyError, PyMongoError

from billing import claims
from billing.clock import Clock, utc_now
from billing.errors import LedgerUnavailable
from billing.invoices import find_invoice
from billing.money import Money
from billing.ports import FulfilmentQueue
from billing.providers.base import EventKind, Outcome, VerifiedEvent
from billing.providers.konsol import NAME as PAYOUT_PROVIDER  # its rows are payouts' outcomes, not payments
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
        """Enqueue again the customer payments whose fulfilment job is gone (a Redis restart without
        persistence, a job deleted by hand): unfinished, older than `min_age`, oldest first, at most `limit`.
        Only payments are its business: payout outcomes (provider konsol) are finished when written, and a
        payment whose job still exists (queued, retrying, or failed and told to the admins once) is left to
        it. Every unfinished row is looked at, so no number of such rows hides a stranded one behind them.
        Safe to run from every web process on a timer. Returns how many it sent round."""
        cutoff = self._clock() - min_age
        unfinished = {"$or": [
            {"status": OperationStatus.RECORDED.value},
            {"status": OperationStatus.APPLIED.value, "notified_at": None},
        ], "recorded_at": {"$lte": cutoff}, "provider": {"$ne": PAYOUT_PROVIDER}}
        sent = 0
        try:
            cursor = Operation.find(unfinished).sort("recorded_at", "_id")
            batch: list[tuple[str, str, str]] = []
            async for operation in cursor:
                batch.append((operation.provider, operation.operation_id, operation.label))
                if len(batch) == STRANDED_BATCH:
                    sent += await self._queue.enqueue_stranded(batch[: limit - sent])
                    batch = []
                    if sent >= limit:
                        break
            if batch and sent < limit:
                sent += await self._queue.enqueue_stranded(batch[: limit - sent])
        except PyMongoError as err:
            raise LedgerUnavailable(f"database: {type(err).__name__}") from err
        if sent:
            log.info("sent %d unfinished operation(s) round again", sent)
        return sent

    async def _record(self, event: VerifiedEvent) -> Outcome:
        if event.kind is EventKind.UNVERIFIED:
            return await self._keep_unverified(event)
        invoice = await find_invoice(event.label) if event.label else None
        verdict = _check_against(invoice, event.amount)
        if verdict is not None:
            operation, _ = await self._insert(event, OperationStatus.REJECTED, reason=_REJECTION[verdict])
            if operation.status is OperationStatus.UNVERIFIED:
                await self._promote(operation, event, OperationStatus.REJECTED, reason=_REJECTION[verdict])
            log.warning(
                "%s operation %s for label %r rejected: %s (paid %s); kept for review",
                event.provider, event.operation_id, event.label, verdict.value, event.amount,
            )
            return verdict
        status = OperationStatus.HELD if event.kind is EventKind.HELD else OperationStatus.RECORDED
        operation, fresh = await self._insert(event, status)
        if operation.status is OperationStatus.UNVERIFIED:
            operation, fresh = await self._promote(operation, event, status), True
        if operation.status is OperationStatus.HELD and event.kind is EventKind.PAYMENT:
            operation = await self._release(operation)
        if operation.status in (OperationStatus.HELD, OperationStatus.RECORDED):
            operation = await self._claim_or_extra(operation)
        if operation.status is OperationStatus.HELD:
            log.info("%s operation %s held: money not yet available", event.provider, event.operation_id)
            if fresh:
                await self._queue.enqueue_hold_notice(operation.provider, operation.operation_id)
            return Outcome.HELD
        if operation.status is OperationStatus.EXTRA:
            await self._queue.enqueue_extra(operation.provider, operation.operation_id)
            return Outcome.EXTRA
        if _unfinished(operation):
            await self._queue.enqueue_fulfilment(operation.provider, operation.operation_id, operation.label)
        return Outcome.ACCEPTED if fresh else Outcome.DUPLICATE

    async def _keep_unverified(self, event: VerifiedEvent) -> Outcome:
        """Store an unproven notification so that it is never lost; it pays nothing until confirmed."""
        operation, fresh = await self._insert(event, OperationStatus.UNVERIFIED)
        if operation.status is not OperationStatus.UNVERIFIED:
            return Outcome.DUPLICATE  # already confirmed (or judged) through the provider's API
        if fresh:
            log.info("%s operation %s for label %r kept as unverified until the provider confirms it",
                     event.provider, event.operation_id, event.label)
        return Outcome.UNVERIFIED

    async def _claim_or_extra(self, operation: Operation) -> Operation:
        """Claim the invoice for this operation in the request that records it; money for an invoice that
        another payment claimed first is `extra` (a recorded one; a held one waits until it is released)."""
        if await claims.claim(operation.label, operation.key, now=self._clock()):
            return operation
        if operation.status is OperationStatus.HELD:
            log.warning("%s held for invoice %s, which another payment has claimed", operation.key, operation.label)
            return operation
        return await mark_extra(operation)

    async def reverse(self, provider: str, operation_id: str, reason: str) -> None:
        """Queue the reversal of a recorded or held operation the provider took back or never credited."""
        await self._queue.enqueue_reversal(provider, operation_id, reason)

    async def dismiss(self, provider: str, operation_id: str, reason: str) -> bool:
        """unverified → rejected: the provider's API does not confirm the operation. True when this call did it."""
        try:
            result = await Operation.get_motor_collection().update_one(
                {"provider": provider, "operation_id": operation_id, "status": OperationStatus.UNVERIFIED.value},
                {"$set": {"status": OperationStatus.REJECTED.value, "reason": reason}},
            )
        except PyMongoError as err:
            raise LedgerUnavailable(f"database: {type(err).__name__}") from err
        if result.modified_count:
            log.warning("%s:%s dismissed: %s", provider, operation_id, reason)
        return result.modified_count == 1

    async def unverified(self, provider: str, limit: int = STRANDED_BATCH) -> list[Operation]:
        """The provider's operations still waiting for its API to confirm them, oldest first."""
        return await self._by_status(provider, OperationStatus.UNVERIFIED, limit)

    async def held(self, provider: str, limit: int = STRANDED_BATCH) -> list[Operation]:
        """The provider's operations whose money is not yet available, oldest first."""
        return await self._by_status(provider, OperationStatus.HELD, limit)

    async def _by_status(self, provider: str, status: OperationStatus, limit: int) -> list[Operation]:
        try:
            return await Operation.find({"provider": provider, "status": status.value}).sort(
                "recorded_at").limit(limit).to_list()
        except PyMongoError as err:
            raise LedgerUnavailable(f"database: {type(err).__name__}") from err

    async def _promote(self, operation: Operation, event: VerifiedEvent, status: OperationStatus,
                       reason: str | None = None) -> Operation:
        """unverified → `status` with what the provider's API confirmed (its amounts and label, never the
        unproven notification's)."""
        await Operation.get_motor_collection().update_one(
            {"_id": operation.id, "status": OperationStatus.UNVERIFIED.value},
            {"$set": {
                "status": status.value, "reason": reason, "label": event.label, "amount": event.amount.minor,
                "currency": event.amount.currency,
                "net_amount": event.net_amount.minor if event.net_amount else None,
                "payment_method": event.payment_method, "payment_token": event.payment_token,
            }},
        )
        promoted = await find_operation(operation.provider, operation.operation_id)
        assert promoted is not None, "operations are never deleted"
        return promoted

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
            period_end=event.period_end,
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


async def check_payable(
    label: str, amount: Money, *, exact: bool = False, now: datetime | None = None, holder: str | None = None
) -> Outcome | None:
    """For a provider's pre-payment check (Payme CheckPerformTransaction, Click Prepare, CloudPayments
    Check): None when the invoice may be paid with `amount`, else why not. `exact` refuses overpayment.

    An invoice that another payment or live hold has claimed (billing/claims.py) is ALREADY_PAID before any
    worker has run; `holder` is the caller's own claim key, which does not count against it."""
    invoice = await find_invoice(label) if label else None
    if invoice is not None:
        taken_by = claims.holder(invoice, now or utc_now())
        if invoice.status is not InvoiceStatus.PENDING or (taken_by is not None and taken_by != holder):
            return Outcome.ALREADY_PAID
    verdict = _check_against(invoice, amount)
    if verdict is not None or invoice is None:
        return verdict
    if exact and amount.minor != invoice.amounts[amount.currency]:
        return Outcome.WRONG_AMOUNT
    return None


async def mark_extra(operation: Operation) -> Operation:
    """recorded → extra: the invoice was claimed by another payment; refund it (settle_extra) or by hand."""
    await Operation.get_motor_collection().update_one(
        {"_id": operation.id, "status": OperationStatus.RECORDED.value},
        {"$set": {"status": OperationStatus.EXTRA.value}},
    )
    current = await find_operation(operation.provider, operation.operation_id)
    assert current is not None, "operations are never deleted"
    if current.status is OperationStatus.EXTRA:
        log.warning("%s paid invoice %s, which another payment had claimed: kept as extra for a refund",
                    current.key, current.label)
    return current


async def find_operation(provider: str, operation_id: str) -> Operation | None:
    return await Operation.find_one(Operation.provider == provider, Operation.operation_id == operation_id)
