"""Trials: the one free first period each Telegram user may ever take."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, IndexModel

from db.record import Record


class TrialUse(Record):
    """A user's trial, written before the period is added: the unique index on user_id is what makes it once per
    user ever, so two concurrent taps (or two plans' buttons) give one trial."""

    user_id: int
    plan: str
    days: int
    started_at: datetime
    applied: bool = False  # the period was added to the subscription; False after a crash between the two steps

    class Settings:
        name = "trial_uses"
        indexes = [IndexModel([("user_id", ASCENDING)], unique=True, name="user_unique")]


TRIAL_DOCUMENTS: list[type[Record]] = [TrialUse]
