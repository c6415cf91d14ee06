"""Naming a period: its end in Unix milliseconds, which is exactly what MongoDB stores of a datetime."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from billing.invoices import LABEL_PREFIX


def period_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def period_from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def period_filter(value: int) -> dict[str, datetime]:
    """The stored datetimes within that millisecond (the store keeps milliseconds; Python keeps micros)."""
    start = period_from_ms(value)
    return {"$gte": start, "$lt": start + timedelta(milliseconds=1)}


def renewal_label(user_id: int, period: int) -> str:
    """The invoice every attempt of one period's renewal pays: fixed by (user, period), so a rerun after a
    crash finds the invoice it made, shaped like every other label."""
    return LABEL_PREFIX + hashlib.sha256(f"renewal:{user_id}:{period}".encode()).hexdigest()[:24]
