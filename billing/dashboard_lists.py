"""The dashboard's lists beyond payments (invoices, renewals in dunning, payout claims, promo codes) and the
history page of each object.

Each list is a page at a time through an index on what it filters and sorts by, with a cursor (the last row's
sort key) instead of skip, so a late page costs what the first does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from beanie import SortDirection

from billing.dashboard import MAX_HISTORY, PAGE_SIZE
from db import Invoice, Operation, OperationStatus
from db.admin import AdminAudit
from db.payouts import PayoutClaim
from db.promo import PromoCode, PromoRedemption
from db.renewals import OPEN_VALUES, Renewal

NEWEST, OLDEST = SortDirection.DESCENDING, SortDirection.ASCENDING


async def invoices_page(*, status: str | None = None, kind: str | None = None, before: datetime | None = None,
                        limit: int = PAGE_SIZE) -> list[Invoice]:
    query: dict[str, object] = {}
    if status:
        query["status"] = status
    if kind:
        query["kind"] = kind
    if before is not None:
        query["created_at"] = {"$lt": before}
    return await Invoice.find(query).sort(("created_at", NEWEST)).limit(limit).to_list()


@dataclass(frozen=True, slots=True)
class InvoiceHistory:
    invoice: Invoice
    payments: list[Operation]
    audit: list[AdminAudit]  # what admins did to it, newest first

    @property
    def held(self) -> bool:
        """A two-stage payment waits for an admin's confirmation."""
        return any(op.status is OperationStatus.HELD for op in self.payments)


async def invoice_history(label: str) -> InvoiceHistory | None:
    invoice = await Invoice.find_one({"label": label})
    if invoice is None:
        return None
    payments = await Operation.find({"label": label}).sort(("recorded_at", NEWEST)).limit(MAX_HISTORY).to_list()
    return InvoiceHistory(invoice, payments, await audit_of(f"invoice:{label}"))


async def audit_of(target: str) -> list[AdminAudit]:
    return await AdminAudit.find({"target": target}).sort(("at", NEWEST)).limit(MAX_HISTORY).to_list()


async def dunning_page(*, after: datetime | None = None, limit: int = PAGE_SIZE) -> list[Renewal]:
    """Renewals still being tried, the next attempt soonest first."""
    query: dict[str, object] = {"status": {"$in": OPEN_VALUES}}
    if after is not None:
        query["next_attempt_at"] = {"$gt": after}
    return await Renewal.find(query).sort(("next_attempt_at", OLDEST)).limit(limit).to_list()


async def payouts_page(*, status: str | None = None, before: datetime | None = None,
                       limit: int = PAGE_SIZE) -> list[PayoutClaim]:
    """Filed claims newest first (drafts only when asked for by status)."""
    query: dict[str, object] = {"status": status} if status else {"status": {"$ne": "draft"}}
    if before is not None:
        query["created_at"] = {"$lt": before}
    return await PayoutClaim.find(query).sort(("created_at", NEWEST)).limit(limit).to_list()


async def promo_page(*, after: str | None = None, limit: int = PAGE_SIZE) -> list[PromoCode]:
    query: dict[str, object] = {"code": {"$gt": after}} if after else {}
    return await PromoCode.find(query).sort(("code", OLDEST)).limit(limit).to_list()


@dataclass(frozen=True, slots=True)
class PromoHistory:
    code: PromoCode
    redemptions: list[PromoRedemption]


async def promo_history(code: str) -> PromoHistory | None:
    found = await PromoCode.find_one({"code": code.upper()})
    if found is None:
        return None
    uses = await PromoRedemption.find({"code": found.code}).limit(MAX_HISTORY).to_list()
    return PromoHistory(found, sorted(uses, key=lambda use: use.at, reverse=True))
