"""One-off invoices: the owner's orders (POST /api/invoices with amounts) and the payers' donations (/donate).

They are paid exactly as a plan's invoice is (every provider's check compares the amount fixed here), but
paying one grants no subscription, never saves a method for merchant-initiated charges and never offers "pay
and renew". An order's `order_id` is unique: its invoice's label is derived from it (order_label), so the
invoices' unique label index lets one insert win whatever the number of concurrent repeats, and a repeat
returns the invoice made first; one that asks for other amounts or another user is refused (OrderConflict).
(A unique index on a field most invoices leave empty would need a partial index, which the in-memory database
of the tests and the demo does not honour; the label index behaves the same in both.) Creation lives here,
apart from the plans' (billing/invoices.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from billing.errors import BillingError
from billing.invoices import new_label
from billing.money import ORDER_LIMITS
from billing.plans import Catalogue
from db import Invoice, InvoiceKind

MAX_DESCRIPTION = 128  # the receipt item's name: YooKassa and the 54-FZ receipt take 128 characters
MAX_ORDER_ID = 64
ORDER_ID = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500
MAX_METADATA_BYTES = 4096
MAX_SAFE_INTEGER = 2**53 - 1
ORDER_LABEL_PREFIX = "ord_"  # what a JSON reader on the owner's side keeps exactly


class OrderRefused(BillingError):
    """An order or donation that cannot be made as asked; `code` is the admin API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class OrderConflict(BillingError):
    """The order_id names an invoice made for other amounts or another user."""

    def __init__(self, existing: Invoice) -> None:
        super().__init__(f"order {existing.order_id} exists with other amounts or another user")
        self.existing = existing


@dataclass(frozen=True, slots=True)
class OrderRequest:
    user_id: int
    amounts: dict[str, int]
    description: str
    order_id: str | None
    metadata: dict[str, Any] | None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def checked_amounts(value: object, limits: Mapping[str, tuple[int, int]] = ORDER_LIMITS) -> dict[str, int]:
    """{"RUB": 50000, ...}: at least one known currency, each an integer of minor units within its limits."""
    if not isinstance(value, dict) or not value:
        raise OrderRefused("invalid_amounts", 'amounts must be an object such as {"RUB": 50000} (minor units)')
    amounts: dict[str, int] = {}
    for currency, minor in value.items():
        if currency not in limits:
            raise OrderRefused("unknown_currency", f"currency must be one of {', '.join(sorted(limits))}")
        if not _is_int(minor):
            raise OrderRefused("invalid_amounts", f"amounts.{currency} must be an integer of minor units")
        low, high = limits[currency]
        if not low <= minor <= high:
            raise OrderRefused("amount_out_of_range", f"amounts.{currency} must be from {low} to {high} minor units")
        amounts[currency] = minor
    return amounts


def checked_text(value: object, field: str, limit: int, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit or not value.isprintable():
        raise OrderRefused(f"invalid_{field}", f"{field} must be printable text of 1 to {limit} characters")
    return value.strip()


def checked_order_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not ORDER_ID.fullmatch(value):
        raise OrderRefused("invalid_order_id", f"order_id must be 1 to {MAX_ORDER_ID} of A-Z a-z 0-9 . _ : / -")
    return value


def checked_metadata(value: object) -> dict[str, Any] | None:
    """A flat object of at most MAX_METADATA_KEYS short keys, each value a string, a safe integer, a boolean or
    null: nothing nested, nothing big (the owner's own reference data, not a document store)."""
    if value is None:
        return None
    refused = OrderRefused("invalid_metadata", (
        f"metadata must be a flat object of at most {MAX_METADATA_KEYS} keys of up to {MAX_METADATA_KEY} "
        f"characters, values strings of up to {MAX_METADATA_VALUE} characters, integers, booleans or null, "
        f"{MAX_METADATA_BYTES} bytes in all"))
    if not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS:
        raise refused
    for key, item in value.items():
        if not 0 < len(key) <= MAX_METADATA_KEY or key.startswith("$") or "." in key:
            raise refused
        scalar = item is None or isinstance(item, bool) or (_is_int(item) and abs(item) <= MAX_SAFE_INTEGER)
        if not scalar and not (isinstance(item, str) and len(item) <= MAX_METADATA_VALUE):
            raise refused
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
        raise refused
    return dict(value)


def order_request(body: Mapping[str, Any], user_id: int) -> OrderRequest:
    """The order a POST /api/invoices body asks for; OrderRefused names the first field that is wrong."""
    description = checked_text(body.get("description"), "description", MAX_DESCRIPTION, required=True)
    assert description is not None
    return OrderRequest(user_id=user_id, amounts=checked_amounts(body.get("amounts")), description=description,
                        order_id=checked_order_id(body.get("order_id")),
                        metadata=checked_metadata(body.get("metadata")))


async def create_order(request: OrderRequest, *, now: datetime, ttl_seconds: int) -> tuple[Invoice, bool]:
    """The order's invoice and whether it is new. A repeated order_id returns the first invoice (concurrent
    repeats too: the unique index lets one insert win); other amounts or another user raise OrderConflict."""
    invoice = Invoice(
        label=order_label(request.order_id) if request.order_id else new_label(), user_id=request.user_id,
        kind=InvoiceKind.ORDER, amounts=dict(request.amounts),
        description=request.description, order_id=request.order_id, metadata=request.metadata,
        created_at=now, expires_at=now + timedelta(seconds=ttl_seconds),
    )
    try:
        await invoice.insert()
        return invoice, True
    except DuplicateKeyError:
        if request.order_id is None:
            raise
    existing = await find_order(request.order_id)
    if existing is None:  # the winner's insert is durable before our DuplicateKeyError: never reached
        raise OrderRefused("order_id_unavailable", "the order_id is taken; try again")
    if existing.amounts != request.amounts or existing.user_id != request.user_id:
        raise OrderConflict(existing)
    return existing, False


def order_label(order_id: str) -> str:
    """The label of an order's invoice: the same for the same order_id, a different one (96 bits of SHA-256)
    for any other; short and ASCII like every label, and keyed by nothing that may change (a rotated secret
    must not make a retried order a second invoice)."""
    return ORDER_LABEL_PREFIX + hashlib.sha256(f"order:{order_id}".encode()).hexdigest()[:24]


async def find_order(order_id: str) -> Invoice | None:
    invoice = await Invoice.find_one(Invoice.label == order_label(order_id))
    return invoice if invoice is not None and invoice.order_id == order_id else None


def is_one_off(invoice: Invoice) -> bool:
    """An order or a donation: paid once, no subscription, nothing saved for later charges."""
    return invoice.kind is not InvoiceKind.PLAN


def item_title(invoice: Invoice, plans: Catalogue) -> str:
    """What the invoice pays for, as pages, notices and receipts name it: the plan's title, or the
    description of an order or donation."""
    if invoice.plan is None:
        return invoice.description or invoice.label
    return plans.title(invoice.plan)
