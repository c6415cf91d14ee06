"""CSV exports for the accountant: the ledger's payments of a period, and the subscribers.

Rows are read through a cursor (which fetches them in batches) sorted on an indexed field, so a year of
payments never sits in memory; each row is one CSV line. Amounts are written in major units with exactly two
decimals from the integer minor units (never through a float). A cell a spreadsheet would run as a formula (=,
+, -, @, a tab or a carriage return first) is prefixed with an apostrophe, as OWASP advises against CSV
injection.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from enum import Enum

from beanie import SortDirection

from billing.subscriptions import renews_automatically
from db import Operation, Subscription

PAYMENT_COLUMNS = ("recorded_at", "provider", "operation_id", "label", "amount", "currency", "net_amount",
                   "status", "applied_at", "reversed_at")
SUBSCRIBER_COLUMNS = ("user_id", "plan", "status", "current_period_end", "auto_renew", "payment_provider")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def major_units(minor: int | None) -> str:
    if minor is None:
        return ""
    sign, whole = ("-", -minor) if minor < 0 else ("", minor)
    return f"{sign}{whole // 100}.{whole % 100:02d}"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    text = str(value.value) if isinstance(value, Enum) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_line(values: Sequence[object]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([_cell(value) for value in values])
    return out.getvalue()


async def payment_lines(since: datetime, until: datetime) -> AsyncIterator[str]:
    """The header, then every ledger row recorded in [since, until), oldest first."""
    yield csv_line(PAYMENT_COLUMNS)
    query = {"recorded_at": {"$gte": since, "$lt": until}}
    async for op in Operation.find(query).sort(("recorded_at", SortDirection.ASCENDING)):
        yield csv_line((op.recorded_at, op.provider, op.operation_id, op.label, major_units(op.amount),
                        op.currency, major_units(op.net_amount), op.status, op.applied_at, op.reversed_at))


async def subscriber_lines(since: datetime | None = None, until: datetime | None = None) -> AsyncIterator[str]:
    """The header, then every subscription by user id; with a period, those with access at some time in
    [since, until): their period ran past its start and they began before its end (or before we kept when)."""
    yield csv_line(SUBSCRIBER_COLUMNS)
    query: dict[str, object] = {}
    if since is not None and until is not None:
        query = {"current_period_end": {"$gt": since},
                 "$or": [{"started_at": {"$lt": until}}, {"started_at": None}]}
    async for sub in Subscription.find(query).sort(("user_id", SortDirection.ASCENDING)):
        yield csv_line((sub.user_id, sub.plan, sub.status, sub.current_period_end,
                        "yes" if renews_automatically(sub) else "no", sub.payment_provider))
