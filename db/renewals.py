"""Renewals: one row per subscription and period being renewed, unique on (user_id, period_end).

The row is the durable memory of the dunning schedule: which attempt is running, the provider's
charge it started (so a rerun after a crash looks that charge up instead of making another), when
the next attempt is due, and how it ended.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pymongo import ASCENDING, IndexModel

from db.record import Record


class RenewalStatus(StrEnum):
    DUE = "due"  # the next attempt runs at next_attempt_at
    CHARGING = "charging"  # an attempt started; its charge may or may not exist at the provider
    PENDING = "pending"  # the provider took the charge but has not decided; looked up at next_attempt_at
    PAID = "paid"  # the charge succeeded and went into the ledger
    FAILED = "failed"  # declined for good (hard decline or retries exhausted)
    CLOSED = "closed"  # nothing to charge any more: renewed by hand, auto-renewal cancelled, method removed


OPEN_STATUSES = (RenewalStatus.DUE, RenewalStatus.CHARGING, RenewalStatus.PENDING)
OPEN_VALUES = [status.value for status in OPEN_STATUSES]  # for filters


class Renewal(Record):
    user_id: int
    period_end: datetime  # the end of the period this renewal continues
    provider: str
    plan: str
    label: str  # the renewal invoice every attempt of this period pays
    status: RenewalStatus = RenewalStatus.DUE
    attempts: int = 0  # attempts started, the first charge included
    next_attempt_at: datetime
    operation_id: str | None = None  # the provider's charge of the current attempt, once it named one
    charge_attempt: int = 0  # the attempt whose idempotency key the current try charges with (0: `attempts`)
    outcome_unknown: bool = False  # DUE after a try whose outcome is unknown: the next try repeats that charge
    last_reason: str | None = None
    hard_decline: bool = False
    notice: str | None = None  # "<event>:<attempt>" the user is to be told, set with the state change
    notice_pending: bool = False  # set with `notice`; cleared once the notice went out
    created_at: datetime
    updated_at: datetime

    class Settings:
        name = "renewals"
        indexes = [
            IndexModel([("user_id", ASCENDING), ("period_end", ASCENDING)], unique=True, name="period_unique"),
            IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="due"),
            IndexModel([("notice_pending", ASCENDING)], name="notice_pending"),
        ]


RENEWAL_DOCUMENTS: list[type[Record]] = [Renewal]
