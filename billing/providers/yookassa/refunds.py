"""YooKassa refunds (reference §6): POST /refunds and GET /refunds/{id}.

A refund is `pending`, `succeeded` or `canceled` (with `cancellation_details {party, reason}`). Only
`refund.succeeded` is notified; a pending refund that ends `canceled` sends nothing, so a pending one
is tracked (billing/refunds.py) and looked up until it ends. The payment's `refunded_amount` counts
succeeded refunds only. One Idempotence-Key per payment and attempt: the first refund of a payment
keeps the key the admin API always used, and each attempt after a canceled refund gets a key of its
own (within 24 hours the old key would only answer the canceled refund again).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from billing.clock import utc_now
from billing.money import Money
from billing.providers.base import ProviderRejected
from billing.providers.yookassa.protocol import (
    DESCRIPTION_LIMIT,
    NAME,
    OBJECT_ID,
    ApiClient,
    amount_json,
    cancellation,
    idempotence_key,
    read_amount,
)
from billing.refunds import RefundResult, RefundStatus, canceled_refunds, pending_refund, track

log = logging.getLogger(__name__)

STATUSES = {"pending": RefundStatus.PENDING, "succeeded": RefundStatus.SUCCEEDED, "canceled": RefundStatus.CANCELED}


def refund_result(refund: Mapping[str, Any]) -> RefundResult:
    """A Refund object as our RefundResult; a status we do not know counts as not finished."""
    status = STATUSES.get(str(refund.get("status")))
    if status is None:
        log.warning("yookassa refund %s has unknown status %r; treated as pending", refund.get("id"),
                    refund.get("status"))
        status = RefundStatus.PENDING
    details = cancellation(refund) if status is RefundStatus.CANCELED else {"party": None, "reason": None}
    return RefundResult(status, str(refund.get("id", "")), details["party"] or "", details["reason"] or "")


def refund_body(operation_id: str, amount: Money, description: str,
                receipt: Mapping[str, Any] | None) -> dict[str, Any]:
    """POST /refunds; with YOOKASSA_RECEIPTS, the refund receipt of the amount given back (receipts.py)."""
    body: dict[str, Any] = {"payment_id": operation_id, "amount": amount_json(amount),
                            "description": description[:DESCRIPTION_LIMIT]}
    if receipt is not None:
        body["receipt"] = dict(receipt)
    return body


def refund_key(operation_id: str, attempt: int) -> str:
    return idempotence_key("refund", operation_id) if attempt == 0 else idempotence_key(
        "refund", f"{operation_id}:{attempt}")


async def refund_payment(api: ApiClient, *, operation_id: str, amount: Money, label: str,
                         receipt: Mapping[str, Any] | None = None) -> RefundResult:
    """Refund a payment in full. A refund of it still pending is answered, not asked for again; a
    payment already refunded in full otherwise (in the profile) counts as done. A refund YooKassa
    cancels at once raises ProviderRejected with its reason; a pending one is tracked before returning."""
    open_one = await pending_refund(NAME, operation_id)
    if open_one is not None:
        return RefundResult(RefundStatus.PENDING, open_one.refund_id)
    body = refund_body(operation_id, amount, f"Refund of invoice {label}", receipt)
    try:
        refund = await api.create_refund(body, refund_key(operation_id, await canceled_refunds(NAME, operation_id)))
    except ProviderRejected:
        if await refunded_in_full(api, operation_id, amount):
            log.info("yookassa payment %s was refunded in full already", operation_id)
            return RefundResult(RefundStatus.SUCCEEDED)
        raise
    result = refund_result(refund)
    log.info("yookassa refund %s of payment %s: %s", result.refund_id, operation_id, result.status.value)
    if result.status is RefundStatus.CANCELED:
        raise ProviderRejected(f"yookassa canceled the refund ({result.party}: {result.reason})")
    if result.status is RefundStatus.PENDING:
        await track(NAME, result, operation_id=operation_id, label=label, amount=amount, now=utc_now())
    return result


async def refund_part(api: ApiClient, *, operation_id: str, amount: Money, label: str, key: str,
                      receipt: Mapping[str, Any] | None = None) -> RefundResult:
    """Refund part of a payment (YooKassa allows any amount up to what is left, §6), once per `key`: its
    Idempotence-Key is derived from it. Succeeded or pending (tracked with the key, counted when it ends); a
    refund YooKassa cancels at once, or one past what is left, raises ProviderRejected."""
    body = refund_body(operation_id, amount, f"Partial refund of invoice {label}", receipt)
    result = refund_result(await api.create_refund(body, idempotence_key("refund-part", key)))
    log.info("yookassa partial refund %s (%s) of payment %s: %s", result.refund_id, amount, operation_id,
             result.status.value)
    if result.status is RefundStatus.CANCELED:
        raise ProviderRejected(f"yookassa canceled the refund ({result.party}: {result.reason})")
    if result.status is RefundStatus.PENDING:
        await track(NAME, result, operation_id=operation_id, label=label, amount=amount, now=utc_now(), part_key=key)
    return result


async def refund_status(api: ApiClient, refund_id: str) -> RefundResult:
    """GET /refunds/{id}: the refund as it is now. A refund this shop does not have raises ProviderRejected."""
    if not OBJECT_ID.fullmatch(refund_id):
        raise ProviderRejected(f"{refund_id!r} is not a yookassa refund id")
    refund = await api.get_refund(refund_id)
    if refund is None or refund.get("id") != refund_id:
        raise ProviderRejected(f"yookassa has no refund {refund_id} for this shop")
    return refund_result(refund)


async def refunded_in_full(api: ApiClient, payment_id: str, amount: Money) -> bool:
    payment = await api.get_payment(payment_id)
    refunded = read_amount(payment.get("refunded_amount")) if payment is not None else None
    return refunded is not None and refunded.currency == amount.currency and refunded.minor >= amount.minor
