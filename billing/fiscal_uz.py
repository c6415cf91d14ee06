"""The fields an Uzbek fiscal receipt needs of an item (the IKPU, the package code, the VAT percent), all present.

`ymds check-config` refuses PAYME_RECEIPTS or CLICK_RECEIPTS with one of them missing for a plan; this is the
same rule where the receipt is made, so a plan edited under a running worker fails loudly instead of sending a
receipt Payme or Click would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.errors import BillingError
from billing.fiscal import UZBEK_FIELDS, FiscalItem, missing_fields


class ReceiptDataMissing(BillingError):
    """A plan or the shop lacks a field an Uzbek receipt needs."""


@dataclass(frozen=True, slots=True)
class UzbekItem:
    title: str
    ikpu: str
    package_code: str
    vat_percent: int


def uzbek_item(item: FiscalItem) -> UzbekItem:
    missing = missing_fields(item, UZBEK_FIELDS)
    if missing:
        raise ReceiptDataMissing(f"the receipt of {item.title!r} lacks {', '.join(missing)}")
    assert item.ikpu is not None and item.package_code is not None and item.vat_percent is not None
    return UzbekItem(item.title, item.ikpu, item.package_code, item.vat_percent)


def seller_id(seller_tin: str | None) -> str:
    if not seller_tin:
        raise ReceiptDataMissing("the seller's TIN or PINFL (RECEIPT_SELLER_TIN) is not set")
    return seller_tin
