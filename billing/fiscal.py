"""The fiscal data of the goods: what a receipt says about a plan, and the shop's defaults for it.

A minimal stand-in written to the interface the shared fiscal work (issue 22 part 1) defines, so that the
Uzbek receipts (Payme's `detail`, Click's ofd_data) can be built on it: `FiscalItem`, `FiscalShop` and
`fiscal_item(title, shop)`. Per-plan overrides from plans.toml (`receipt = {...}`) belong to that work;
here every plan takes the shop-wide values from settings (RECEIPT_IKPU, RECEIPT_PACKAGE_CODE,
RECEIPT_VAT_PERCENT, RECEIPT_SELLER_TIN), the title being the plan's.
"""

from __future__ import annotations

from dataclasses import dataclass

from settings import Settings

PAYMENT_SUBJECT = "service"  # 54-FZ: a subscription is a service
PAYMENT_MODE = "full_payment"


@dataclass(frozen=True, slots=True)
class FiscalItem:
    """One receipt line for a plan: the Russian fields (vat_code, payment_subject, payment_mode) and the Uzbek
    ones (ikpu, package_code, vat_percent); a field a country does not use may be None."""

    title: str
    vat_code: int | None = None
    payment_subject: str = PAYMENT_SUBJECT
    payment_mode: str = PAYMENT_MODE
    ikpu: str | None = None
    package_code: str | None = None
    vat_percent: int | None = None


@dataclass(frozen=True, slots=True)
class FiscalShop:
    """The seller's receipt data and the defaults a plan's items take."""

    tax_system_code: int | None = None
    vat_code: int | None = None  # Russia: YooKassa's vat_code (CloudPayments' Vat is derived from it)
    seller_tin: str | None = None  # TIN (9 digits) or PINFL (14 digits) in Uzbekistan
    ikpu: str | None = None
    package_code: str | None = None
    vat_percent: int | None = None


def fiscal_shop(settings: Settings) -> FiscalShop:
    return FiscalShop(tax_system_code=settings.receipt_tax_system_code, vat_code=settings.receipt_vat_code,
                      seller_tin=settings.receipt_seller_tin, ikpu=settings.receipt_ikpu,
                      package_code=settings.receipt_package_code, vat_percent=settings.receipt_vat_percent)


def fiscal_item(title: str, shop: FiscalShop) -> FiscalItem:
    """The receipt line for goods of this title (billing.orders.item_title: a plan's title, or an order's or a
    donation's description)."""
    return FiscalItem(title=title, vat_code=shop.vat_code, ikpu=shop.ikpu, package_code=shop.package_code,
                      vat_percent=shop.vat_percent)
