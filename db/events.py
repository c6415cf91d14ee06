"""Outbound events to the owner's own systems (billing/events): one document per event, kept with its attempts.

The `event_id` derives from the cause (the ledger operation, the renewal attempt, the payout claim), so a job
that runs again after a crash records the same event, once, under the unique index.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from pymongo import ASCENDING, IndexModel

from db.record import Record


class EventStatus(StrEnum):
    PENDING = "pending"  # not yet taken by the receiver; a delivery is queued or scheduled
    DELIVERED = "delivered"  # the receiver answered 2xx
    GAVE_UP = "gave_up"  # every scheduled delivery failed; the admin chat was told; `ymds events replay` resends


class DeliveryAttempt(BaseModel):
    at: datetime
    number: int  # 0: the first delivery; n: the n-th redelivery
    status: int | None = None  # the receiver's HTTP status; None when no answer came (refused, timed out)
    error: str = ""  # what went wrong, without the URL's path or any secret


class OutboundEvent(Record):
    event_id: str  # "evt_" + a digest of the cause: the receiver dedupes on it
    type: str  # payment.succeeded, subscription.renewed, ...
    created: datetime
    data: dict[str, Any]
    status: EventStatus = EventStatus.PENDING
    attempts: list[DeliveryAttempt] = Field(default_factory=list)
    delivered_at: datetime | None = None
    gave_up_at: datetime | None = None
    admin_told_at: datetime | None = None  # the give-up reached the admin chat (once)
    next_attempt_at: datetime | None = None  # when the scheduler's tick sends it (again); None once it is settled
    series_start: int = 0  # attempts made before the last replay: the retry schedule starts again from there
    replays: int = 0  # `ymds events replay` runs

    class Settings:
        name = "outbound_events"
        indexes = [
            IndexModel([("event_id", ASCENDING)], unique=True, name="event_unique"),
            IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="status_due"),
            IndexModel([("created", ASCENDING)], name="created"),
        ]


EVENT_DOCUMENTS: list[type[Record]] = [OutboundEvent]
