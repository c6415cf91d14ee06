"""CloudPayments' refund receipts (54-FZ "IncomeReturn", POST /kkt/receipt): one row per refund we made.

Inserted once, unique on the refund's key, with the request fixed then, before /kkt/receipt is called; it
moves pending → issued (CloudPayments queued the receipt, its Id kept) or refused (Success false: the
message kept, the admin told by the log), each a conditional update leaving `pending`. A try whose outcome
is unknown leaves it pending, and the next try (the scheduler's reconciliation) repeats the same
X-Request-ID, which CloudPayments answers from its store.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from db.record import Record


class RefundReceiptState(StrEnum):
    PENDING = "pending"
    ISSUED = "issued"
    REFUSED = "refused"


class CloudPaymentsRefundReceipt(Record):
    key: str  # the refund's own key: "full:<transaction id>" or the partial refund's key (unique)
    label: str
    transaction_id: str  # the payment refunded
    amount: int  # kopecks given back
    request: dict[str, Any]  # the /kkt/receipt body, fixed at insert
    state: RefundReceiptState = RefundReceiptState.PENDING
    tries: int = 0
    receipt_id: str | None = None  # Model.Id CloudPayments answered
    message: str | None = None  # CloudPayments' Message of a refusal
    created_at: datetime
    issued_at: datetime | None = None

    class Settings:
        name = "cloudpayments_refund_receipts"
        indexes = [IndexModel([("key", ASCENDING)], unique=True, name="key_unique"),
                   IndexModel([("state", ASCENDING)], name="state")]

    @classmethod
    async def record_once(cls, row: CloudPaymentsRefundReceipt) -> CloudPaymentsRefundReceipt:
        """The row of this key: the one given, inserted, or the one a first try inserted (its request kept)."""
        try:
            await row.insert()
            return row
        except DuplicateKeyError:
            found = await cls.find_one({"key": row.key})
            assert found is not None
            return found

    @classmethod
    async def leave_pending(cls, key: str, to: RefundReceiptState, **fields: Any) -> bool:
        result = await cls.get_motor_collection().update_one(
            {"key": key, "state": RefundReceiptState.PENDING.value}, {"$set": {"state": to.value, **fields}})
        return bool(result.modified_count == 1)
