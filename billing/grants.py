"""A subscription given by an admin (the bot's /grant, the dashboard, a gift code), recorded in the ledger
as provider `manual`.

It takes the same road as a paid invoice: an invoice for the plan, a verified event recorded through
Ledger.record, and the fulfilment job that extends the subscription and sends the usual notices.
Both the invoice label and the operation id derive from the admin's message, so a redelivered (or
concurrently repeated) update finds the same rows under their unique indexes and grants nothing twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from billing.invoices import LABEL_PREFIX, create_invoice, get_invoice
from billing.ledger import Ledger
from billing.money import Money
from billing.plans import Plan
from billing.providers.base import EventKind, Outcome, VerifiedEvent

MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Grant:
    label: str
    fresh: bool  # False when this request was already recorded


def grant_label(request_id: str) -> str:
    """Shaped like every other label (inv_ and 24 hex digits), but fixed by the request."""
    return LABEL_PREFIX + hashlib.sha256(f"{MANUAL}:{request_id}".encode()).hexdigest()[:24]


async def grant(ledger: Ledger, plan: Plan, user_id: int, *, request_id: str, now: datetime,
                ttl_seconds: int) -> Grant:
    label = grant_label(request_id)
    try:
        invoice = await create_invoice(plan, user_id, now=now, ttl_seconds=ttl_seconds, label=label)
    except DuplicateKeyError:
        invoice = await get_invoice(label)
    currency, minor = next(iter(invoice.amounts.items()))  # the plan's price, so the ledger's amount check holds
    event = VerifiedEvent(provider=MANUAL, operation_id=request_id, label=label, amount=Money(minor, currency),
                          kind=EventKind.PAYMENT, occurred_at=now)
    outcome = await ledger.record(event)
    return Grant(label, fresh=outcome is Outcome.ACCEPTED)
