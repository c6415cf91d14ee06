"""Refunds a provider has accepted but not finished: one document per provider refund, kept until it ends.

YooKassa answers a refund `pending` when the money is not back yet, and a pending refund can still end
`canceled` without any notification; a Payme receipt queued for cancellation (state 21) is the same.
The row is written before anyone is told "pending", so a restart loses nothing: the scheduler looks
it up again at `next_check_at` until it is `succeeded` (the payment is then reversed) or `canceled`
(the admin chat is told, once, and the subscription stays).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pymongo import ASCENDING, DESCENDING, IndexModel

from db.record import Record


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


class ProviderRefund(Record):
    provider: str
    refund_id: str  # the provider's id of the refund (YooKassa refund id, Payme receipt id)
    operation_id: str  # the payment it takes back
    label: str
    amount: int  # minor units
    currency: str
    status: RefundStatus = RefundStatus.PENDING
    checks: int = 0  # status look-ups made so far
    next_check_at: datetime
    cancel_party: str | None = None
    cancel_reason: str | None = None
    admin_told_at: datetime | None = None  # the canceled refund reached the admin chat
    part_key: str | None = None  # a partial refund (billing/partial_refunds.py): counted on the invoice, once
    created_at: datetime
    updated_at: datetime

    class Settings:
        name = "provider_refunds"
        indexes = [
            IndexModel([("provider", ASCENDING), ("refund_id", ASCENDING)], unique=True, name="refund_unique"),
            IndexModel([("status", ASCENDING), ("next_check_at", ASCENDING)], name="due"),
            IndexModel([("label", ASCENDING), ("created_at", DESCENDING)], name="label_created"),
            IndexModel([("provider", ASCENDING), ("operation_id", ASCENDING)], name="operation"),
        ]


REFUND_DOCUMENTS: list[type[Record]] = [ProviderRefund]
