"""CloudPayments' own state: the notifications that are not payments (Fail, Refund, Cancel, Recurrent,
refused test payments, and the refunds we asked for), the subscriptions the widget created, and the
invoices whose widget was opened (what the reconciliation asks /payments/find about).

A notice row is unique on (kind, key), so a redelivery inserts nothing; what follows the insert is
idempotent and runs again on every delivery. A subscription row is written once, by the first Pay
that carries its id, and only its status moves afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from db.cloudpayments_receipts import CloudPaymentsRefundReceipt
from db.record import Record


class CloudPaymentsNotice(Record):
    """One notification other than a payment, kept for the admin and for refunds that add up."""

    kind: str  # fail, refund, cancel, recurrent, test_refused, or refund_sent (a refund we asked the API for)
    key: str  # TransactionId; for Recurrent "<Id>:<Status>:<successes>:<failures>"
    transaction_id: str | None = None
    payment_transaction_id: str | None = None  # refund/cancel: the payment they take back
    label: str | None = None
    amount: int | None = None  # minor units
    currency: str | None = None
    status: str | None = None
    reason: str | None = None
    reason_code: int | None = None
    subscription_id: str | None = None
    received_at: datetime

    class Settings:
        name = "cloudpayments_notices"
        indexes = [
            IndexModel([("kind", ASCENDING), ("key", ASCENDING)], unique=True, name="kind_key_unique"),
            IndexModel([("payment_transaction_id", ASCENDING), ("kind", ASCENDING)], name="payment_kind"),
        ]

    async def record(self) -> bool:
        """Insert once; False when this (kind, key) was recorded before."""
        try:
            await self.insert()
        except DuplicateKeyError:
            return False
        return True

    @classmethod
    async def taken_back(cls, payment_transaction_id: str) -> tuple[bool, int]:
        """Whether the payment was cancelled, and the sum of its refunds in minor units."""
        rows = await cls.find(
            {"payment_transaction_id": payment_transaction_id, "kind": {"$in": ["refund", "cancel"]}}
        ).to_list()
        cancelled = any(row.kind == "cancel" for row in rows)
        return cancelled, sum(row.amount or 0 for row in rows if row.kind == "refund")


class CloudPaymentsSubscription(Record):
    """A subscription the widget created (`data.CloudPayments.recurrent`): what each renewal buys."""

    subscription_id: str
    label: str  # the invoice the first payment paid
    first_transaction_id: str
    user_id: int
    plan: str
    period_days: int
    amounts: dict[str, int] = Field(default_factory=dict)
    status: str = "Active"
    created_at: datetime
    status_changed_at: datetime | None = None
    transactions: list[str] = Field(default_factory=list)  # its scheduled charges' TransactionIds
    bound_at: datetime | None = None  # when the local subscription learnt that this one renews it
    stop_requested_at: datetime | None = None  # we want it cancelled (/subscriptions/cancel); kept until it is
    stop_reason: str | None = None

    class Settings:
        name = "cloudpayments_subscriptions"
        indexes = [IndexModel([("subscription_id", ASCENDING)], unique=True, name="subscription_id_unique"),
                   IndexModel([("first_transaction_id", ASCENDING)], name="first_transaction"),
                   IndexModel([("transactions", ASCENDING)], name="transactions"),
                   IndexModel([("user_id", ASCENDING)], name="user")]

    @classmethod
    async def by_id(cls, subscription_id: str) -> CloudPaymentsSubscription | None:
        return await cls.find_one({"subscription_id": subscription_id})

    @classmethod
    async def register(cls, row: CloudPaymentsSubscription) -> CloudPaymentsSubscription:
        """Insert the row, or return the one a concurrent or earlier delivery inserted."""
        try:
            await row.insert()
            return row
        except DuplicateKeyError:
            existing = await cls.by_id(row.subscription_id)
            if existing is None:
                raise
            return existing

    @classmethod
    async def of_transaction(cls, transaction_id: str) -> CloudPaymentsSubscription | None:
        """The subscription a payment belongs to: its first payment or one of its scheduled charges."""
        return await cls.find_one({"$or": [{"first_transaction_id": transaction_id},
                                           {"transactions": transaction_id}]})

    @classmethod
    async def set_status(cls, subscription_id: str, status: str, now: datetime) -> bool:
        """Record CloudPayments' status of the subscription; False when unknown or unchanged."""
        query: dict[str, Any] = {"subscription_id": subscription_id, "status": {"$ne": status}}
        result = await cls.get_motor_collection().update_one(
            query, {"$set": {"status": status, "status_changed_at": now}})
        return bool(result.modified_count == 1)


class CloudPaymentsWidgetOpening(Record):
    """An invoice whose CloudPayments widget our page served: a payment for it may exist at CloudPayments
    even when no notification reached us. One row per invoice; each opening moves `last_opened_at`."""

    label: str
    first_opened_at: datetime
    last_opened_at: datetime

    class Settings:
        name = "cloudpayments_widget_openings"
        indexes = [
            IndexModel([("label", ASCENDING)], unique=True, name="label_unique"),
            IndexModel([("last_opened_at", ASCENDING)], name="last_opened_at"),
        ]

    @classmethod
    async def opened(cls, label: str, now: datetime) -> None:
        """Note that the widget for `label` was served at `now` (an upsert: concurrent openings make one row)."""
        await cls.get_motor_collection().update_one(
            {"label": label},
            {"$setOnInsert": {"label": label, "first_opened_at": now}, "$max": {"last_opened_at": now}},
            upsert=True,
        )

    @classmethod
    async def labels_opened(cls, start: datetime, end: datetime, limit: int) -> list[str]:
        """The invoices whose widget was served at some time in [start, end): first opened before `end`,
        last opened at or after `start` (an invoice opened before and after the window is asked about too)."""
        rows = await cls.find({"first_opened_at": {"$lt": end}, "last_opened_at": {"$gte": start}}).sort(
            "last_opened_at").limit(limit).to_list()
        return [row.label for row in rows]


CLOUDPAYMENTS_DOCUMENTS: list[type[Record]] = [CloudPaymentsNotice, CloudPaymentsSubscription,
                                               CloudPaymentsWidgetOpening, CloudPaymentsRefundReceipt]
