"""The admin dashboard's queries: each one bounded (a page size, an index on what it filters and sorts by).

Counts use MongoDB's count_documents on indexed fields; lists are newest first, a page at a time, with a
cursor (`before`: the last row's recorded_at) rather than skip, so page 1000 costs what page 1 does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from beanie import SortDirection

from db import Invoice, InvoiceStatus, Operation, OperationStatus, Subscription, SubscriptionStatus
from db.users import find_by_username

PAGE_SIZE = 50
REVIEW_STATUSES = (OperationStatus.REJECTED, OperationStatus.EXTRA, OperationStatus.HELD)


@dataclass(frozen=True, slots=True)
class Overview:
    active_subscribers: int
    past_due_subscribers: int
    for_review: dict[str, int]  # operation status → how many wait for an admin
    revenue: dict[str, int]  # currency → minor units applied in the window
    window_days: int


async def overview(now: datetime, window_days: int = 30) -> Overview:
    since = now - timedelta(days=window_days)
    active = await Subscription.find({"status": SubscriptionStatus.ACTIVE.value}).count()
    past_due = await Subscription.find({"status": SubscriptionStatus.PAST_DUE.value}).count()
    review = {status.value: await Operation.find({"status": status.value}).count() for status in REVIEW_STATUSES}
    pipeline = [
        {"$match": {"status": OperationStatus.APPLIED.value, "recorded_at": {"$gte": since}}},
        {"$group": {"_id": "$currency", "total": {"$sum": "$amount"}}},
    ]
    rows = await Operation.get_motor_collection().aggregate(pipeline).to_list(length=None)
    revenue = {str(row["_id"]): int(row["total"]) for row in rows}
    return Overview(active, past_due, review, dict(sorted(revenue.items())), window_days)


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
