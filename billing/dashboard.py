"""The admin dashboard's queries: each one bounded (a page size, an index on what it filters and sorts by).

Counts use MongoDB's count_documents on indexed fields; lists are newest first, a page at a time, with a
cursor (`before`: the last row's recorded_at) rather than skip, so page 1000 costs what page 1 does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from beanie import SortDirection

from db import Invoice, InvoiceKind, InvoiceStatus, Operation, OperationStatus, Subscription, SubscriptionStatus
from db.renewals import Renewal, RenewalStatus
from db.users import find_by_username

PAGE_SIZE = 50
REVIEW_STATUSES = (OperationStatus.REJECTED, OperationStatus.EXTRA, OperationStatus.HELD)


@dataclass(frozen=True, slots=True)
class Revenue:
    period: str  # "2026-12-03" per day, "2026-12" per month (UTC)
    currency: str
    provider: str
    total: int  # minor units applied


@dataclass(frozen=True, slots=True)
class Overview:
    active_subscribers: int
    past_due_subscribers: int
    for_review: dict[str, int]  # operation status → how many wait for an admin
    revenue: dict[str, int]  # currency → minor units applied in the window
    window_days: int
    daily: list[Revenue]  # the window, per day, currency and provider
    monthly: list[Revenue]  # the last twelve months, per month, currency and provider
    new_subscribers: int  # runs of paid periods that began in the window (new or returning)
    churned_subscribers: int  # periods that ended in the window and were not paid again
    mrr: dict[str, int]  # currency → minor units a month from the paid periods running now
    renewals_paid: int  # automatic renewals in the window that charged
    renewals_failed: int  # and that ended declined

    @property
    def renewal_success_percent(self) -> int | None:
        tried = self.renewals_paid + self.renewals_failed
        return None if tried == 0 else round(100 * self.renewals_paid / tried)


async def overview(now: datetime, window_days: int = 30) -> Overview:
    since = now - timedelta(days=window_days)
    active = await Subscription.find({"status": SubscriptionStatus.ACTIVE.value,
                                      "current_period_end": {"$gt": now}}).count()
    past_due = await Subscription.find({"status": SubscriptionStatus.PAST_DUE.value}).count()
    review = {status.value: await Operation.find({"status": status.value}).count() for status in REVIEW_STATUSES}
    daily = await revenue_by("%Y-%m-%d", since)
    monthly = await revenue_by("%Y-%m", (now - timedelta(days=366)).replace(day=1, hour=0, minute=0, second=0,
                                                                           microsecond=0))
    revenue: dict[str, int] = {}
    for row in daily:
        revenue[row.currency] = revenue.get(row.currency, 0) + row.total
    new = await Subscription.find({"started_at": {"$gte": since, "$lte": now}}).count()
    churned = await Subscription.find({"current_period_end": {"$gte": since, "$lte": now},
                                       "status": {"$ne": SubscriptionStatus.PAST_DUE.value}}).count()
    paid = await Renewal.find({"status": RenewalStatus.PAID.value, "updated_at": {"$gte": since}}).count()
    failed = await Renewal.find({"status": RenewalStatus.FAILED.value, "updated_at": {"$gte": since}}).count()
    return Overview(active, past_due, review, dict(sorted(revenue.items())), window_days, daily, monthly, new,
                    churned, await monthly_recurring(now), paid, failed)


async def revenue_by(day_format: str, since: datetime) -> list[Revenue]:
    """Applied payments since `since`, summed per period (a $dateToString format), currency and provider."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"status": OperationStatus.APPLIED.value, "recorded_at": {"$gte": since}}},
        {"$group": {"_id": {"period": {"$dateToString": {"format": day_format, "date": "$recorded_at"}},
                            "currency": "$currency", "provider": "$provider"},
                    "total": {"$sum": "$amount"}}},
    ]
    rows = await Operation.get_motor_collection().aggregate(pipeline).to_list(length=None)
    found = [Revenue(str(row["_id"]["period"]), str(row["_id"]["currency"]), str(row["_id"]["provider"]),
                     int(row["total"])) for row in rows]
    return sorted(found, key=lambda row: (row.period, row.currency, row.provider))


MONTH_DAYS = 30
LONGEST_PERIOD = timedelta(days=366)


async def monthly_recurring(now: datetime) -> dict[str, int]:
    """MRR: every paid plan invoice whose period still runs, its amount brought to 30 days. Grouped in the
    database per day paid, currency and period length, so what reaches us is bounded by days, not payments."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"kind": InvoiceKind.PLAN.value, "status": InvoiceStatus.PAID.value,
                    "paid_at": {"$gte": now - LONGEST_PERIOD}}},
        {"$group": {"_id": {"day": {"$dateToString": {"format": "%Y-%m-%d", "date": "$paid_at"}},
                            "currency": "$paid_currency", "days": "$period_days"},
                    "total": {"$sum": "$paid_amount"}}},
    ]
    mrr: dict[str, int] = {}
    today = now.date()
    for row in await Invoice.get_motor_collection().aggregate(pipeline).to_list(length=None):
        key = row["_id"]
        days = key.get("days")
        if not days:
            continue
        paid_on = datetime.fromisoformat(key["day"]).date()
        if (today - paid_on).days < days:  # the period paid that day still runs
            mrr[key["currency"]] = mrr.get(key["currency"], 0) + int(row["total"]) * MONTH_DAYS // days
    return dict(sorted(mrr.items()))


async def payments_page(*, status: str | None = None, before: datetime | None = None,
                        limit: int = PAGE_SIZE) -> list[Operation]:
    query: dict[str, object] = {}
    if status:
        query["status"] = status
    if before is not None:
        query["recorded_at"] = {"$lt": before}
    return await Operation.find(query).sort(("recorded_at", SortDirection.DESCENDING)).limit(limit).to_list()


@dataclass(frozen=True, slots=True)
class UserHistory:
    user_id: int
    subscription: Subscription | None
    invoices: list[Invoice]
    payments: list[Operation]


MAX_HISTORY = 200


async def user_history(user_id: int) -> UserHistory:
    newest = SortDirection.DESCENDING
    invoices = await Invoice.find({"user_id": user_id}).sort(("created_at", newest)).limit(MAX_HISTORY).to_list()
    labels = [invoice.label for invoice in invoices]
    payments = await Operation.find({"label": {"$in": labels}}).sort(("recorded_at", newest)).limit(
        MAX_HISTORY).to_list() if labels else []
    subscription = await Subscription.find_one({"user_id": user_id})
    return UserHistory(user_id, subscription, invoices, payments)


async def find_user(query: str) -> int | None:
    """A Telegram id as typed, the owner of an invoice label, or a @username the bot has seen."""
    text = query.strip()
    if text.isdigit() and 0 < int(text) < 2**53:
        return int(text)
    invoice = await Invoice.find_one({"label": text})
    if invoice is not None:
        return invoice.user_id
    user = await find_by_username(text)
    return user.user_id if user else None


def refundable(invoice: Invoice) -> bool:
    return invoice.status is InvoiceStatus.PAID and invoice.paid_by is not None
