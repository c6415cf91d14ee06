"""Click's SHOP-API state: one row per payment attempt (Prepare → Complete), and the prepare-id counter.

Click's `merchant_prepare_id` is an int, so it cannot be an ObjectId: it is minted from a counter
row. An attempt moves only by conditional updates whose filter names the state it leaves.

An attempt is Click's `click_trans_id` *for one order*: Click's test tool sends one click_trans_id for
every order it tests, so the row is unique on (click_trans_id, label). Rows written before that carry no
`operation_id` (their ledger id was the click_trans_id alone), and databases made then still have the
unique index on click_trans_id alone, which `insert_attempt` drops the first time it gets in the way.
"""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from db.record import Record

log = logging.getLogger(__name__)

PREPARE_ID_COUNTER = "click_merchant_prepare_id"
LEGACY_INDEX = "click_trans_id_unique"  # unique on click_trans_id alone, before attempts were per order
MAX_PREPARE_ID = 2**31 - 1  # Click types merchant_prepare_id as a 32-bit int


class PrepareIdExhausted(RuntimeError):
    """The counter passed 2^31 - 1; Click could not read a larger merchant_prepare_id."""


class ClickAttemptState(StrEnum):
    PREPARED = "prepared"  # Prepare answered 0; waiting for Complete
    CONFIRMING = "confirming"  # a Complete with error=0 won the attempt; the ledger record is being made
    COMPLETED = "completed"  # recorded in the ledger and answered
    CANCELLED = "cancelled"  # Click reported a failure (Complete with error < 0); never paid


class ClickAttempt(Record):
    """One Click payment attempt (`click_trans_id`) for one invoice label."""

    click_trans_id: int
    operation_id: str | None = None  # the ledger's id; None on rows from before it was stored (see ledger_id)
    prepare_id: int  # our merchant_prepare_id, also answered as merchant_confirm_id
    label: str
    amount: int  # tiyin, fixed at Prepare
    click_paydoc_id: int  # Click's payment number (the payer's SMS); for support and reversals
    state: ClickAttemptState = ClickAttemptState.PREPARED
    prepared_at: datetime
    confirmed_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    click_error: int | None = None  # Click's own error code on a cancelling Complete
    click_error_note: str | None = None

    class Settings:
        name = "click_attempts"
        indexes = [
            IndexModel([("click_trans_id", ASCENDING), ("label", ASCENDING)], unique=True,
                       name="click_trans_id_label_unique"),
            IndexModel([("prepare_id", ASCENDING)], unique=True, name="prepare_id_unique"),
            IndexModel([("label", ASCENDING), ("state", ASCENDING)], name="label_state"),
            IndexModel([("state", ASCENDING), ("prepared_at", ASCENDING)], name="state_prepared_at"),
        ]

    @property
    def ledger_id(self) -> str:
        """The operation id this attempt is recorded under; a row from before per-order ids used click_trans_id."""
        return self.operation_id if self.operation_id is not None else str(self.click_trans_id)

    @classmethod
    async def by_click_trans_id(cls, click_trans_id: int, label: str) -> ClickAttempt | None:
        return await cls.find_one({"click_trans_id": click_trans_id, "label": label})

    @classmethod
    async def unfinished_between(cls, start: datetime, end: datetime) -> list[ClickAttempt]:
        """Attempts prepared in [start, end) that Click never completed nor cancelled here (reconciliation)."""
        states = [ClickAttemptState.PREPARED.value, ClickAttemptState.CONFIRMING.value]
        query = {"state": {"$in": states}, "prepared_at": {"$gte": start, "$lt": end}}
        return await cls.find(query).sort("prepared_at").to_list()

    async def insert_attempt(self) -> None:
        """Insert; DuplicateKeyError when this (click_trans_id, label) exists. The legacy index, unique on
        click_trans_id alone, would refuse the same click_trans_id for another order: it is dropped, once."""
        try:
            await self.insert()
        except DuplicateKeyError as err:
            if (err.details or {}).get("keyPattern") != {"click_trans_id": 1}:
                raise
            await drop_legacy_index()
            await self.insert()

    @classmethod
    async def by_prepare_id(cls, prepare_id: int) -> ClickAttempt | None:
        return await cls.find_one({"prepare_id": prepare_id})

    @classmethod
    async def any_in(cls, label: str, states: tuple[ClickAttemptState, ...], *, besides: int | None = None) -> bool:
        """Whether another attempt for `label` is in one of `states` (excluding prepare id `besides`)."""
        query: dict[str, Any] = {"label": label, "state": {"$in": [state.value for state in states]}}
        if besides is not None:
            query["prepare_id"] = {"$ne": besides}
        return await cls.find_one(query) is not None

    @classmethod
    async def move(cls, prepare_id: int, leaving: ClickAttemptState, to: ClickAttemptState,
                   **fields: Any) -> bool:
        """leaving → to, once: True only for the caller whose update made the move."""
        result = await cls.get_motor_collection().update_one(
            {"prepare_id": prepare_id, "state": leaving.value},
            {"$set": {"state": to.value, **fields}},
        )
        return bool(result.modified_count == 1)

    @classmethod
    async def note(cls, prepare_id: int, **fields: Any) -> None:
        """Store facts about an attempt without moving it (Click's error on an attempt already paid)."""
        await cls.get_motor_collection().update_one({"prepare_id": prepare_id}, {"$set": fields})


async def drop_legacy_index() -> None:
    """Drop the unique index on click_trans_id alone (databases made before attempts were per order)."""
    try:
        await ClickAttempt.get_motor_collection().drop_index(LEGACY_INDEX)
    except OperationFailure:  # already gone: another process dropped it first
        return
    log.warning("click: dropped the index %s (attempts are now unique per click_trans_id and order)", LEGACY_INDEX)


class ClickCounter(Record):
    """A named monotonically increasing counter (`$inc`), unique by name."""

    name: str
    value: int = 0

    class Settings:
        name = "click_counters"
        indexes = [IndexModel([("name", ASCENDING)], unique=True, name="name_unique")]


async def next_prepare_id() -> int:
    """A fresh merchant_prepare_id: 1, 2, 3, ... never repeated, always below 2^31."""
    collection = ClickCounter.get_motor_collection()
    for _ in range(2):  # two first-ever upserts may race on the unique name; the loser retries
        try:
            row = await collection.find_one_and_update(
                {"name": PREPARE_ID_COUNTER}, {"$inc": {"value": 1}},
                upsert=True, return_document=ReturnDocument.AFTER,
            )
            break
        except DuplicateKeyError:
            continue
    else:
        raise DuplicateKeyError("click prepare-id counter upsert raced twice")
    value = int(row["value"])
    if value > MAX_PREPARE_ID:
        raise PrepareIdExhausted(f"merchant_prepare_id {value} exceeds {MAX_PREPARE_ID}")
    return value

