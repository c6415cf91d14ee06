"""Refunds that are still pending are not refunds: a payment is reversed only once its refund succeeded.

A provider's `refund` answers a RefundResult. `succeeded` (or a provider that answers nothing, whose
refunds are final at once) lets the caller reverse the payment. `pending` is tracked first
(db/refunds.py, before anyone hears "pending"), then looked up on a schedule that survives restarts:
the scheduler's tick takes each due look-up (moving `next_check_at` on by POLL_DELAYS, so a failed
look-up simply waits for the next one) and the worker's `check_refund` asks the provider. A refund that
succeeded reverses the payment (reverse_payment, once whatever the number of runs); a canceled one keeps
the subscription and tells the admin chat once, with the provider's reason. The provider's own
notification of success (YooKassa's refund.succeeded) settles a tracked refund the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pymongo.errors import DuplicateKeyError

from billing.clock import Clock, utc_now
from billing.events.changes import part_refunded
from billing.invoices import count_refund, get_invoice, refunded_in_full
from billing.money import Money
from billing.ports import NoticeQueue, Notifier, RefundCanceledNotice
from billing.reversal import reverse_payment
from db import ExtraRefund, Operation
from db.refunds import ProviderRefund, RefundStatus

log = logging.getLogger(__name__)

__all__ = ["POLL_DELAYS", "RefundResult", "RefundStatus", "check_refund", "due_checks", "track"]

POLL_DELAYS = (60, 300, 1800, 3600, 3 * 3600, 6 * 3600)  # seconds before each look-up; the last repeats
BATCH = 200
REVERSAL_REASON = "refund succeeded at the provider"


@dataclass(frozen=True, slots=True)
class RefundResult:
    """What a provider says of one refund: its id and status, and why when it was canceled."""

    status: RefundStatus
    refund_id: str = ""
    party: str = ""
    reason: str = ""


class RefundChecker(Protocol):
    async def refund_status(self, refund_id: str) -> RefundResult:
        """The refund's current status; raises ProviderUnavailable when the provider does not answer."""
        ...


class RefundCheckQueue(Protocol):
    async def enqueue_refund_check(self, provider: str, refund_id: str, check: int) -> None:
        """Run check_refund for look-up number `check`; a duplicate enqueue is harmless."""
        ...


def delay_before(check: int) -> timedelta:
    """The wait before look-up number `check` (1-based)."""
    return timedelta(seconds=POLL_DELAYS[min(max(check, 1), len(POLL_DELAYS)) - 1])


async def track(provider: str, result: RefundResult, *, operation_id: str, label: str, amount: Money,
                now: datetime, part_key: str | None = None) -> ProviderRefund:
    """Keep a pending refund until it ends; the same refund reported again keeps its first row. `part_key`
    marks a refund of part of the payment (billing/partial_refunds.py)."""
    row = ProviderRefund(provider=provider, refund_id=result.refund_id, operation_id=operation_id, label=label,
                         amount=amount.minor, currency=amount.currency, next_check_at=now + delay_before(1),
                         created_at=now, updated_at=now, part_key=part_key)
    try:
        await row.insert()
        log.info("%s refund %s of %s is pending; looked up again at %s", provider, result.refund_id, operation_id,
                 row.next_check_at.isoformat())
        return row
    except DuplicateKeyError:
        existing = await find_refund(provider, result.refund_id)
        assert existing is not None
        return existing


async def find_refund(provider: str, refund_id: str) -> ProviderRefund | None:
    return await ProviderRefund.find_one({"provider": provider, "refund_id": refund_id})


async def pending_refund(provider: str, operation_id: str) -> ProviderRefund | None:
    """A refund of this payment that has not ended: a second request must not start another."""
    return await ProviderRefund.find_one({"provider": provider, "operation_id": operation_id,
                                          "status": RefundStatus.PENDING.value})


async def canceled_refunds(provider: str, operation_id: str) -> int:
    """How many refunds of this payment were canceled: a new attempt needs a new idempotency key."""
    return await ProviderRefund.find({"provider": provider, "operation_id": operation_id,
                                      "status": RefundStatus.CANCELED.value}).count()


async def latest_refund(label: str) -> ProviderRefund | None:
    return await ProviderRefund.find({"label": label}).sort("-created_at").first_or_none()


def refund_json(row: ProviderRefund) -> dict[str, Any]:
    """The refund as the admin API shows it on the invoice."""
    return {"status": row.status.value, "provider": row.provider, "refund_id": row.refund_id,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
            "next_check_at": row.next_check_at.isoformat() if row.status is RefundStatus.PENDING else None,
            "cancellation": ({"party": row.cancel_party, "reason": row.cancel_reason}
                             if row.status is RefundStatus.CANCELED else None)}


async def settle(provider: str, result: RefundResult, *, now: datetime) -> bool:
    """pending → succeeded or canceled; True when this call ended it (False: untracked or ended already)."""
    if result.status is RefundStatus.PENDING:
        return False
    changes: dict[str, Any] = {"status": result.status.value, "updated_at": now}
    if result.status is RefundStatus.CANCELED:
        changes |= {"cancel_party": result.party or None, "cancel_reason": result.reason or None,
                    "admin_told_at": now}
    outcome = await ProviderRefund.get_motor_collection().update_one(
        {"provider": provider, "refund_id": result.refund_id, "status": RefundStatus.PENDING.value},
        {"$set": changes})
    if outcome.modified_count:
        log.info("%s refund %s %s", provider, result.refund_id, result.status.value)
        row = await find_refund(provider, result.refund_id)
        if row is not None:
            await _end_extra_refund(row, result)
    return outcome.modified_count == 1


async def _end_extra_refund(row: ProviderRefund, result: RefundResult) -> None:
    """The refund of an extra payment (billing/extras.py) ended: refunded, or, canceled, listed for a refund by
    hand (`ymds extras`, GET /api/extras) with the provider's reason. Only while it is still refund_pending."""
    if result.status is RefundStatus.SUCCEEDED:
        values = {"extra_refund": ExtraRefund.REFUNDED.value, "extra_detail": f"refund {row.refund_id} succeeded"}
    else:
        values = {"extra_refund": ExtraRefund.MANUAL.value, "extra_detail": (
            f"{row.provider} canceled refund {row.refund_id} ({result.party or '-'}: {result.reason or '-'})")}
    await Operation.get_motor_collection().update_one(
        {"provider": row.provider, "operation_id": row.operation_id,
         "extra_refund": ExtraRefund.REFUND_PENDING.value}, {"$set": values})


async def due_checks(now: datetime, queue: RefundCheckQueue) -> int:
    """The scheduler's part: each pending refund due for a look-up gets one, and its next one is set first,
    so a look-up that fails or is lost waits only for the next."""
    due = ProviderRefund.find({"status": RefundStatus.PENDING.value,
                               "next_check_at": {"$lte": now}}).sort("next_check_at").limit(BATCH)
    count = 0
    async for row in due:
        check = row.checks + 1
        taken = await ProviderRefund.get_motor_collection().update_one(
            {"_id": row.id, "status": RefundStatus.PENDING.value, "checks": row.checks},
            {"$set": {"checks": check, "next_check_at": now + delay_before(check + 1), "updated_at": now}})
        if taken.modified_count:
            await queue.enqueue_refund_check(row.provider, row.refund_id, check)
            count += 1
    return count


async def check_refund(provider: str, refund_id: str, *, providers: Mapping[str, Any], notices: NoticeQueue,
                       notifier: Notifier, clock: Clock = utc_now) -> str:
    """The worker's look-up of one pending refund. Succeeded: the payment is reversed, then the row ends;
    canceled: the admin chat is told, then the row ends. A crash in between repeats only what is idempotent."""
    row = await find_refund(provider, refund_id)
    if row is None or row.status is not RefundStatus.PENDING:
        return "ended" if row is not None else "unknown"
    checker = providers.get(provider)
    if checker is None or not hasattr(checker, "refund_status"):
        log.error("%s refund %s is pending, but %s is not enabled to look it up", provider, refund_id, provider)
        return "no_provider"
    result: RefundResult = await checker.refund_status(refund_id)
    if result.status is RefundStatus.SUCCEEDED and (row.part_key is None or await count_part(row)):
        await reverse_payment(provider, row.operation_id, reason=REVERSAL_REASON, notices=notices, clock=clock)
    elif result.status is RefundStatus.CANCELED:
        await _tell_admin(row, result, notifier)
    else:
        return "pending"
    await settle(provider, result, now=clock())
    return result.status.value


async def count_part(row: ProviderRefund) -> bool:
    """A tracked partial refund succeeded: count it on the invoice (once); True when the invoice is now refunded
    in full, so the payment is to be reversed."""
    assert row.part_key is not None
    await count_refund(row.label, row.part_key, row.amount)
    await part_refunded(row.label, row.part_key, Money(row.amount, row.currency), provider=row.provider,
                        operation_id=row.operation_id)
    return await refunded_in_full(row.label)


async def _tell_admin(row: ProviderRefund, result: RefundResult, notifier: Notifier) -> None:
    log.warning("%s refund %s of %s (%s) was canceled by %s: %s; the subscription stays", row.provider,
                row.refund_id, row.operation_id, row.label, result.party or "the provider", result.reason)
    invoice = await get_invoice(row.label)
    await notifier.refund_canceled(RefundCanceledNotice(
        user_id=invoice.user_id, label=row.label, provider=row.provider, refund_id=row.refund_id,
        amount=Money(row.amount, row.currency), party=result.party, reason=result.reason))
