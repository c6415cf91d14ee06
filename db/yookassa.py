"""YooKassa payments we create: one document per attempt to pay an invoice, keyed by its Idempotence-Key.

The document is reserved (unique insert on `key`) before the API is called, with the exact request
body; every retry re-sends that body under that key, so YooKassa answers with the same payment
however often the payer presses the button or our process dies between the call and the save.
A cancelled attempt is final at YooKassa; the next press reserves attempt n + 1 under a new key.
Statuses move by conditional updates whose filter names the states they leave.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from db.record import Record

EXTERNAL_ATTEMPT = -1  # a payment we did not create, seen only in a notification


class YooKassaStatus(StrEnum):
    CREATING = "creating"  # reserved; the create request may or may not have reached YooKassa
    PENDING = "pending"
    WAITING_FOR_CAPTURE = "waiting_for_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


OPEN = (YooKassaStatus.CREATING.value, YooKassaStatus.PENDING.value, YooKassaStatus.WAITING_FOR_CAPTURE.value)


class YooKassaPayment(Record):
    key: str  # the Idempotence-Key of the create request
    label: str
    attempt: int  # 0, 1, ... per invoice; EXTERNAL_ATTEMPT for a payment created elsewhere
    request: dict[str, Any]  # the create body, re-sent unchanged on every retry
    status: YooKassaStatus = YooKassaStatus.CREATING
    payment_id: str | None = None
    confirmation_url: str | None = None
    cancel_party: str | None = None
    cancel_reason: str | None = None
    created_at: datetime
    updated_at: datetime | None = None

    class Settings:
        name = "yookassa_payments"
        indexes = [
            IndexModel([("key", ASCENDING)], unique=True, name="key_unique"),
            IndexModel([("label", ASCENDING), ("attempt", DESCENDING)], name="label_attempt"),
            IndexModel([("payment_id", ASCENDING)], name="payment_id"),
            IndexModel([("status", ASCENDING), ("created_at", ASCENDING)], name="status_created"),
        ]


async def latest_attempt(label: str) -> YooKassaPayment | None:
    return await YooKassaPayment.find(
        YooKassaPayment.label == label, YooKassaPayment.attempt >= 0
    ).sort("-attempt").first_or_none()


async def reserve(key: str, label: str, attempt: int, request: dict[str, Any], now: datetime) -> YooKassaPayment:
    """Insert the attempt, or return the one a concurrent press inserted first."""
    record = YooKassaPayment(key=key, label=label, attempt=attempt, request=request, created_at=now)
    try:
        await record.insert()
        return record
    except DuplicateKeyError:
        existing = await YooKassaPayment.find_one(YooKassaPayment.key == key)
        if existing is None:  # only a concurrent delete could hide it
            raise
        return existing


async def record_created(key: str, payment_id: str, status: YooKassaStatus, confirmation_url: str | None,
                         now: datetime, *, party: str | None = None, reason: str | None = None) -> None:
    """creating → what YooKassa answered; a repeat with the same answer changes nothing."""
    await YooKassaPayment.get_motor_collection().update_one(
        {"key": key, "status": YooKassaStatus.CREATING.value},
        {"$set": {"payment_id": payment_id, "status": status.value, "confirmation_url": confirmation_url,
                  "cancel_party": party, "cancel_reason": reason, "updated_at": now}},
    )


async def record_status(payment_id: str, status: YooKassaStatus, now: datetime, *, label: str = "",
                        party: str | None = None, reason: str | None = None) -> None:
    """An open attempt → succeeded or canceled (with who cancelled it and why). A payment we have no
    document for (created elsewhere) gets one when it is cancelled, so the reason is kept."""
    changes: dict[str, Any] = {"status": status.value, "updated_at": now}
    if status is YooKassaStatus.CANCELED:
        changes |= {"cancel_party": party, "cancel_reason": reason}
    result = await YooKassaPayment.get_motor_collection().update_many(
        {"payment_id": payment_id, "status": {"$in": list(OPEN)}}, {"$set": changes}
    )
    if result.matched_count or status is not YooKassaStatus.CANCELED:
        return
    if await YooKassaPayment.find_one(YooKassaPayment.payment_id == payment_id) is not None:
        return
    try:
        await YooKassaPayment(
            key=f"external:{payment_id}", label=label, attempt=EXTERNAL_ATTEMPT, request={}, status=status,
            payment_id=payment_id, cancel_party=party, cancel_reason=reason, created_at=now, updated_at=now,
        ).insert()
    except DuplicateKeyError:
        pass  # a concurrent delivery of the same cancellation recorded it


async def open_payments(limit: int = 500) -> list[YooKassaPayment]:
    """The payments we created that YooKassa may still complete (pending or waiting for capture), oldest
    first: what the reconciliation asks YooKassa about. A reserved attempt without a payment id is found
    by the payments list instead (its metadata carries the label)."""
    return await YooKassaPayment.find(
        {"status": {"$in": [YooKassaStatus.PENDING.value, YooKassaStatus.WAITING_FOR_CAPTURE.value]},
         "payment_id": {"$ne": None}}
    ).sort("created_at").limit(limit).to_list()


async def attempts(label: str) -> list[YooKassaPayment]:
    return await YooKassaPayment.find(YooKassaPayment.label == label).sort("attempt").to_list()


YOOKASSA_DOCUMENTS: list[type[Record]] = [YooKassaPayment]
