"""What /stats reports: applied payments per provider and currency since a moment, active subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.subscriptions import count_with_access
from db import Invoice, InvoiceKind, InvoiceStatus, Operation, OperationStatus


@dataclass(frozen=True, slots=True)
class ProviderTotal:
    provider: str
    currency: str
    count: int
    total: int  # minor units


def start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def start_of_month(now: datetime) -> datetime:
    return start_of_day(now).replace(day=1)


async def payment_totals(since: datetime) -> list[ProviderTotal]:
    """Payments applied since `since` (UTC), grouped by provider and currency. Refunded ones no longer
    count: a reversal moves the operation out of `applied`."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"status": OperationStatus.APPLIED.value, "applied_at": {"$gte": since}}},
        {"$group": {"_id": {"provider": "$provider", "currency": "$currency"},
                    "count": {"$sum": 1}, "total": {"$sum": "$amount"}}},
    ]
    rows = await Operation.get_motor_collection().aggregate(pipeline).to_list(None)
    totals = [ProviderTotal(row["_id"]["provider"], row["_id"]["currency"], row["count"], row["total"]) for row in rows]
    return sorted(totals, key=lambda item: (item.provider, item.currency))


@dataclass(frozen=True, slots=True)
class DonationTotal:
    currency: str
    count: int
    total: int  # minor units, what was paid less what was refunded


async def donation_totals(since: datetime) -> list[DonationTotal]:
    """Donations paid since `since`, per currency; a refunded one (status refunded) no longer counts, a partly
    refunded one counts what was kept."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"kind": InvoiceKind.DONATION.value, "status": InvoiceStatus.PAID.value,
                    "paid_at": {"$gte": since}}},
        {"$group": {"_id": "$paid_currency", "count": {"$sum": 1}, "paid": {"$sum": "$paid_amount"},
                    "refunded": {"$sum": "$refunded_amount"}}},
    ]
    rows = await Invoice.get_motor_collection().aggregate(pipeline).to_list(None)
    return sorted((DonationTotal(row["_id"], row["count"], row["paid"] - row["refunded"]) for row in rows),
                  key=lambda item: item.currency)


async def active_subscriptions(now: datetime) -> int:
    return await count_with_access(now)
