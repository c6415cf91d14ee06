"""Payme's fiscalisation, emulated: the check of the `detail` a shop's CheckPerformTransaction answers, and the
SetFiscalData call Payme makes once the receipt is registered.

Written from Payme's documentation (developer.help.paycom.uz: CheckPerformTransaction, receipts.create's detail
object, SetFiscalData), never from billing/providers/payme. A kassa with fiscalisation on needs `detail` with
`receipt_type` and `items` of `title`, `price` (tiyin per unit), `count`, `code` (the 17-digit IKPU),
`package_code` and `vat_percent` (both marked required), optional `discount` (for the whole count) and
`shipping` {title, price}; the positions must add up to the amount. What the real Payme does with a bad detail
is not documented: this emulator refuses the payment before any transaction is created.
"""

from __future__ import annotations

import re
from typing import Any

SPIC = re.compile(r"[0-9]{17}")
RECEIPT_TYPES = (0, 1)  # 0 a sale, 1 a prepayment
QR_BASE = "https://ofd.soliq.uz/epi"


def _whole(value: Any, *, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def item_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "an item is not an object"
    if not isinstance(item.get("title"), str) or not item["title"].strip():
        return "items[].title is required"
    if not _whole(item.get("price")) or not _whole(item.get("count"), low=1):
        return "items[].price (tiyin) and items[].count (at least 1) are integers"
    if not isinstance(item.get("code"), str) or not SPIC.fullmatch(item["code"]):
        return "items[].code is the 17-digit IKPU"
    if not isinstance(item.get("package_code"), str) or not item["package_code"].strip():
        return "items[].package_code is required"
    if not _whole(item.get("vat_percent")) or item["vat_percent"] > 100:
        return "items[].vat_percent is required (0 to 100)"
    if "discount" in item and not _whole(item["discount"]):
        return "items[].discount is an integer (tiyin)"
    return None


def detail_problem(result: Any, amount: int) -> str | None:
    """Why a fiscalising kassa refuses this CheckPerformTransaction result, or None."""
    detail = result.get("detail") if isinstance(result, dict) else None
    if not isinstance(detail, dict):
        return "no detail: the kassa fiscalises, so CheckPerformTransaction must answer the receipt's detail"
    if detail.get("receipt_type") not in RECEIPT_TYPES or isinstance(detail.get("receipt_type"), bool):
        return "detail.receipt_type must be 0 or 1"
    items = detail.get("items")
    if not isinstance(items, list) or not items:
        return "detail.items must list at least one item"
    for item in items:
        problem = item_problem(item)
        if problem is not None:
            return problem
    total = sum(item["price"] * item["count"] - item.get("discount", 0) for item in items)
    shipping = detail.get("shipping")
    if shipping is not None:
        if not isinstance(shipping, dict) or not _whole(shipping.get("price")):
            return "detail.shipping.price is an integer (tiyin)"
        total += shipping["price"]
    if total != amount:
        return f"the receipt's items add up to {total} tiyin, the payment is {amount}"
    return None


def fiscal_data(payme_id: str, receipt_number: int, registered: str) -> dict[str, Any]:
    """The fiscal data of a registered receipt, shaped as Payme's SetFiscalData example (receipt_id a number)."""
    sign = int(payme_id[-10:], 16) % 10**12
    return {
        "receipt_id": receipt_number, "status_code": 0, "message": "accepted", "terminal_id": "EP000000000025",
        "fiscal_sign": f"{sign:012d}", "date": registered,
        "qr_code_url": f"{QR_BASE}?t=EP000000000025&r={receipt_number}&c={registered}&s={sign:012d}",
    }
