"""Payme Merchant API documents: the transactions Payme creates on our side, and a key Payme changed.

A transaction moves 1 → 2 → −2 or 1 → −1, each step one conditional update whose filter names the
state it leaves. "One live transaction per invoice" is the invoice's claim (billing.claims), held
under "payme:<payme_id>", not a field of the transaction.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Any

from pydantic import Field
from pymongo import ASCENDING, IndexModel

from db.record import Record

RETIRED_INDEXES = {"payme_transactions": ("order_lock_unique",)}  # dropped by drop_retired_indexes()


class PaymeState(IntEnum):
    CREATED = 1  # waiting: the invoice is reserved for this transaction
    PERFORMED = 2  # paid
    CANCELLED = -1  # cancelled before perform
    CANCELLED_AFTER_PERFORM = -2  # cancelled after perform: the payment is reversed


class PaymeTransaction(Record):
    payme_id: str  # Payme's transaction id (params.id), unique
    payme_time: int  # Payme's creation time, epoch ms, as Payme sent it
    amount: int  # tiyin
    label: str  # our invoice label (the account field)
    account: dict[str, str]  # the account object as Payme sent it, echoed by GetStatement
    state: PaymeState
    create_time: int  # epoch ms, ours; all times are stored so repeated calls answer identically
    perform_time: int = 0
    cancel_time: int = 0
    reason: int | None = None
    fiscal_data: dict[str, dict[str, Any]] = Field(default_factory=dict)  # SetFiscalData, per type
    created_at: datetime

    class Settings:
        name = "payme_transactions"
        indexes = [
            IndexModel([("payme_id", ASCENDING)], unique=True, name="payme_id_unique"),
            IndexModel([("payme_time", ASCENDING)], name="payme_time"),
            IndexModel([("label", ASCENDING)], name="label"),
        ]


class PaymeKey(Record):
    """A key Payme set with ChangePassword. It replaces PAYME_KEY only while PAYME_KEY is still the
    value it replaced (`replaced_sha256`): an operator who sets a new PAYME_KEY wins over it."""

    slot: str = "merchant"
    key: str
    replaced_sha256: str
    changed_at: datetime

    class Settings:
        name = "payme_keys"
        indexes = [IndexModel([("slot", ASCENDING)], unique=True, name="slot_unique")]


class PaymeCardPayment(Record):
    """The one Subscribe API receipt the payment page's card binding pays an invoice with.

    Inserted (unique on `label`) before any receipt exists; `receipt_id` is set once Payme names the
    receipt, by a conditional update from None, so two presses of the button can never pay two
    receipts for one invoice."""

    label: str
    receipt_id: str | None = None
    created_at: datetime

    class Settings:
        name = "payme_card_payments"
        indexes = [IndexModel([("label", ASCENDING)], unique=True, name="label_unique")]


async def drop_retired_indexes(database: Any) -> None:
    """Drop the indexes earlier versions created and this one no longer declares. `order_lock_unique`
    must go: transactions no longer carry `order_lock`, and a unique index over a missing field would
    let only one of them be inserted. Safe to run at every start."""
    for collection, names in RETIRED_INDEXES.items():
        existing = await database[collection].index_information()
        for name in names:
            if name in existing:
                await database[collection].drop_index(name)


PAYME_DOCUMENTS: list[type[Record]] = [PaymeTransaction, PaymeKey, PaymeCardPayment]
