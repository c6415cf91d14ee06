"""Extra payments: money that arrived for an invoice another payment had already claimed.

It is never applied. The settle job refunds it through the paying provider's API where one exists
(YooKassa, CloudPayments, Stars; a refund the provider answers pending is `refund_pending` until it ends:
refunded when it succeeds, listed for a manual refund when it is canceled) and otherwise lists it for a
manual refund (the admin chat, `GET /api/extras`, `ymds extras`); an admin then marks the manual refund
done. Every step is a conditional update on the operation, so the job can run again after a crash without
refunding or telling twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from billing.clock import Clock, utc_now
from billing.errors import OperationNotRecorded
from billing.invoices import find_invoice
from billing.ledger import find_operation
from billing.money import Money
from billing.ports import ExtraNotice, Notifier
from billing.providers.base import ProviderRejected, RefundUnsupported
from billing.refunds import RefundResult, RefundStatus
from db import ExtraRefund, Operation, OperationStatus

log = logging.getLogger(__name__)

NO_REFUND_API = "the provider has no refund API"


async def settle_extra(
    provider: str, operation_id: str, *, providers: Mapping[str, Any], notifier: Notifier, clock: Clock = utc_now
) -> ExtraRefund | None:
    """Refund the extra payment through its provider, or list it for a manual refund; tell the admin chat once.

    Raises ProviderUnavailable when the provider could not be reached: the job is retried and the refund,
    keyed by the operation at the provider, is asked for again."""
    operation = await find_operation(provider, operation_id)
    if operation is None:
        raise OperationNotRecorded(f"{provider}:{operation_id}")
    if operation.extra_refund is None:
        if operation.status is not OperationStatus.EXTRA:
            log.info("%s is %s, not extra: nothing to refund", operation.key, operation.status.value)
            return None
        refund, detail = await _refund(operation, providers.get(provider))
        await _set(operation, {"extra_refund": refund.value, "extra_detail": detail}, unset="extra_refund")
        operation = await find_operation(provider, operation_id) or operation
    assert operation.extra_refund is not None
    if operation.extra_notified_at is None:
        await _tell(operation, notifier)
        await _set(operation, {"extra_notified_at": clock()}, unset="extra_notified_at")
    return operation.extra_refund


async def _refund(operation: Operation, provider: Any) -> tuple[ExtraRefund, str]:
    refund = getattr(provider, "refund", None)
    if refund is None:
        return ExtraRefund.MANUAL, NO_REFUND_API
    try:
        result = await refund(operation_id=operation.operation_id, amount=Money(operation.amount, operation.currency),
                              label=operation.label)
    except RefundUnsupported as err:
        return ExtraRefund.MANUAL, str(err) or NO_REFUND_API
    except ProviderRejected as err:
        log.error("%s: the provider refused to refund the extra payment: %s", operation.key, err)
        return ExtraRefund.MANUAL, f"the provider refused the refund: {err}"
    if isinstance(result, RefundResult) and result.status is RefundStatus.PENDING:
        # tracked by billing/refunds.py, which settles this operation's extra_refund when the refund ends
        log.info("%s: refund %s of the extra payment is pending at %s", operation.key, result.refund_id,
                 operation.provider)
        return ExtraRefund.REFUND_PENDING, f"refund {result.refund_id} pending at {operation.provider}"
    log.info("%s: extra payment refunded through %s", operation.key, operation.provider)
    return ExtraRefund.REFUNDED, ""


async def _tell(operation: Operation, notifier: Notifier) -> None:
    invoice = await find_invoice(operation.label)
    await notifier.extra_payment(ExtraNotice(
        user_id=invoice.user_id if invoice else 0, label=operation.label, provider=operation.provider,
        operation_id=operation.operation_id, amount=str(Money(operation.amount, operation.currency)),
        refunded=operation.extra_refund is ExtraRefund.REFUNDED,
        pending=operation.extra_refund is ExtraRefund.REFUND_PENDING, detail=operation.extra_detail or "",
    ))


async def _set(operation: Operation, values: dict[str, Any], *, unset: str) -> None:
    """Set `values` only while the field `unset` is still empty: a second run changes nothing."""
    await Operation.get_motor_collection().update_one({"_id": operation.id, unset: None}, {"$set": values})


async def refunded_elsewhere(provider: str, operation_id: str) -> None:
    """An extra payment the caller has just refunded itself (the bot gives a second Stars payment back at
    once): the settle job then only tells the admin chat."""
    await Operation.get_motor_collection().update_one(
        {"provider": provider, "operation_id": operation_id, "extra_refund": None},
        {"$set": {"extra_refund": ExtraRefund.REFUNDED.value, "extra_detail": ""}},
    )


async def extras(*, manual_only: bool = False, limit: int = 500) -> list[Operation]:
    """Extra payments, newest first; `manual_only`: those still waiting for a manual refund."""
    query: dict[str, Any] = {"extra_refund": ExtraRefund.MANUAL.value} if manual_only else {
        "$or": [{"status": OperationStatus.EXTRA.value}, {"extra_refund": {"$ne": None}}]}
    return await Operation.find(query).sort("-recorded_at").limit(limit).to_list()


async def mark_refunded_by_hand(provider: str, operation_id: str, *, by: str, now: datetime) -> Operation | None:
    """manual → refunded_by_hand, recorded with who said so. None when the operation is not a manual extra."""
    result = await Operation.get_motor_collection().update_one(
        {"provider": provider, "operation_id": operation_id, "extra_refund": ExtraRefund.MANUAL.value},
        {"$set": {"extra_refund": ExtraRefund.REFUNDED_BY_HAND.value,
                  "extra_detail": f"refunded by hand, marked by {by} at {now.isoformat()}"}},
    )
    if result.modified_count != 1:
        return None
    log.info("%s:%s marked refunded by hand by %s", provider, operation_id, by)
    return await find_operation(provider, operation_id)


def extra_json(operation: Operation) -> dict[str, Any]:
    return {
        "provider": operation.provider, "operation_id": operation.operation_id, "label": operation.label,
        "amount": operation.amount, "currency": operation.currency, "status": operation.status.value,
        "refund": operation.extra_refund.value if operation.extra_refund else "pending",
        "detail": operation.extra_detail, "recorded_at": operation.recorded_at.isoformat(),
    }
