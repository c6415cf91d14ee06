"""Click's fiscal receipts: one row per Click payment whose items we submit through `ofd_data/submit_items`.

Click's fiscalisation API has no idempotency key, so the row is the idempotency: unique on the ledger's
operation id, inserted before anything is sent, with the items fixed then (a later edit of plans.toml does
not change a receipt being retried). It moves pending → submitting (just before the POST) → submitted or
refused, each step a conditional update whose filter names the state it leaves. A row found in `submitting`
means an earlier run may have reached Click: billing/providers/click/receipts.py asks Click before sending
again.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, IndexModel

from db.record import Record


class ClickReceiptState(StrEnum):
    PENDING = "pending"  # inserted; nothing sent yet
    SUBMITTING = "submitting"  # about to be, or being, sent: Click may or may not have it
    SUBMITTED = "submitted"  # Click answered error_code 0
    REFUSED = "refused"  # Click refused it (error_code < 0, or a 4xx): final, the admin chat is told


class ClickReceipt(Record):
    operation_id: str  # the ledger's operation id of the Click payment (unique)
    label: str
    payment_id: int  # Click's payment id the receipt belongs to (the payer's click_paydoc_id)
    amount: int  # tiyin
    request: dict[str, Any]  # the submit_items body, fixed at insert (service_id, payment_id, items, received_*)
    state: ClickReceiptState = ClickReceiptState.PENDING
    submissions: int = 0  # POSTs started; more than one only when Click had no receipt after an unknown outcome
    error_code: int | None = None  # Click's refusal
    error_note: str | None = None
    http_status: int | None = None  # the HTTP status of a refusal
    qr_code_url: str | None = None  # Click's ofd_data qrCodeURL, once it returned one
    created_at: datetime
    submitted_at: datetime | None = None
    refused_at: datetime | None = None
    refusal_notified_at: datetime | None = None

    class Settings:
        name = "click_receipts"
        indexes = [IndexModel([("operation_id", ASCENDING)], unique=True, name="operation_id_unique")]

    @classmethod
    async def by_operation(cls, operation_id: str) -> ClickReceipt | None:
        return await cls.find_one({"operation_id": operation_id})

    @classmethod
    async def move(cls, operation_id: str, leaving: tuple[ClickReceiptState, ...], to: ClickReceiptState,
                   *, inc: dict[str, int] | None = None, **fields: Any) -> bool:
        """One of `leaving` → `to`, once: True only for the caller whose update made the move."""
        update: dict[str, Any] = {"$set": {"state": to.value, **fields}}
        if inc:
            update["$inc"] = inc
        result = await cls.get_motor_collection().update_one(
            {"operation_id": operation_id, "state": {"$in": [state.value for state in leaving]}}, update)
        return bool(result.modified_count == 1)

    @classmethod
    async def set_once(cls, operation_id: str, field: str, value: Any) -> bool:
        """Set `field` where it is still unset; True for the caller that set it."""
        result = await cls.get_motor_collection().update_one(
            {"operation_id": operation_id, field: None}, {"$set": {field: value}})
        return bool(result.modified_count == 1)
