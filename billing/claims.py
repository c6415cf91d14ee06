"""One invoice, one payment: the first payment recorded for an invoice claims it, in the same request.

A claim is a conditional update on the invoice, keyed by the operation ("provider:operation_id"), made
next to the ledger insert; so every provider's pre-payment step (Payme Check/Create, Click Prepare,
CloudPayments Check, the YooKassa button, the Payme card binding) sees an invoice taken by another
provider before any worker has run. A provider whose payment is in flight on its side (a Payme
transaction in state 1, a prepared Click attempt) takes a *hold*: a claim that lapses at a given time
unless the same key makes it final. Money that arrives for an invoice someone else holds is `extra`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from db import Invoice, InvoiceStatus


def hold_key(provider: str, operation_id: str) -> str:
    """The claim key of an operation: the same as Operation.key, so a hold and its payment are one claim."""
    return f"{provider}:{operation_id}"


async def claim(label: str, key: str, *, now: datetime, until: datetime | None = None) -> bool:
    """Take the pending invoice `label` for `key`; True when `key` holds it after the call.

    `until=None` makes a final claim (a recorded payment, which never lapses); a time makes a hold that
    lapses then. The claim succeeds on an unclaimed invoice, over a lapsed hold, or over `key`'s own claim
    (a final claim upgrades its own hold; a hold never downgrades a final claim)."""
    takeable: list[dict[str, object]] = [
        {"claimed_by": None},
        {"claim_until": {"$ne": None, "$lte": now}},
    ]
    if until is None:
        takeable.append({"claimed_by": key})
    else:
        takeable.append({"claimed_by": key, "claim_until": {"$ne": None}})
    result = await Invoice.get_motor_collection().update_one(
        {"label": label, "status": InvoiceStatus.PENDING.value, "$or": takeable},
        {"$set": {"claimed_by": key, "claim_until": until, "claimed_at": now}},
    )
    if result.matched_count == 1:
        return True
    invoice = await Invoice.find_one(Invoice.label == label)
    if invoice is None:
        return False
    return invoice.claimed_by == key or invoice.paid_by == key


async def release(label: str, key: str) -> bool:
    """Drop `key`'s claim on a still pending invoice (a cancelled hold, a reversed unapplied payment)."""
    result = await Invoice.get_motor_collection().update_one(
        {"label": label, "status": InvoiceStatus.PENDING.value, "claimed_by": key},
        {"$set": {"claimed_by": None, "claim_until": None}},
    )
    return result.modified_count == 1


def holder(invoice: Invoice, now: datetime) -> str | None:
    """The key of the claim that holds `invoice` at `now`, or None when nobody does."""
    if invoice.claimed_by is None:
        return invoice.paid_by if invoice.status is not InvoiceStatus.PENDING else None
    until = invoice.claim_until
    if until is not None and _aware(until) <= now:
        return None
    return invoice.claimed_by


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
