"""Payme Merchant API documents: the transactions Payme creates on our side, and a key Payme changed.

A transaction moves 1 → 2 → −2 or 1 → −1, each step one conditional update whose filter names the
state it leaves. `order_lock` enforces "one live transaction per invoice" under a plain unique
index: it holds the invoice label while the transaction is waiting or performed, and a value
unique to the transaction once it is cancelled, so the invoice is free again.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Any

from db.record import Record
from pydantic import Field
from pymongo import ASCENDING, IndexModel

RELEASED_PREFIX = "released:"


class PaymeState(IntEnum):
    CREATED = 1  # waiting: the invoice is reserved for this transaction
    PERFORMED = 2  # paid
    CANCELLED = -1  # cancelled before perform
    CANCELLED_AFTER_PERFORM = -2  # cancelled after perform: the payment is reversed


def released_lock(payme_id: str) -> str:
    """The order_lock of a cancelled transaction: unique to it, never an invoice label."""
    return RELEASED_PREFIX + payme_id


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
    order_lock: str  # label while state is 1 or 2, released_lock(payme_id) after a cancel
    fiscal_data: dict[str, dict[str, Any]] = Field(default_factory=dict)  # SetFiscalData, per type
    created_at: datetime

    class Settings:
        name = "payme_transactions"
        indexes = [
            IndexModel([("payme_id", ASCENDING)], unique=True, name="payme_id_unique"),
            IndexModel([("order_lock", ASCENDING)], unique=True, name="order_lock_unique"),
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


PAYME_DOCUMENTS: list[type[Record]] = [PaymeTransaction, PaymeKey, PaymeCardPayment]
