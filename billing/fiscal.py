"""The fiscal data of the goods: what a receipt says about a plan, and the shop's defaults for it.

Every receipt line, whichever the provider (YooKassa's and CloudPayments' 54-FZ items, Payme's `detail`, Click's
ofd_data), is a `FiscalItem` made here: the plan's own `receipt = {...}` from plans.toml (billing/plan_receipt.py)
field by field over the shop-wide defaults from settings (RECEIPT_VAT_CODE, RECEIPT_IKPU, RECEIPT_PACKAGE_CODE,
RECEIPT_VAT_PERCENT), the title being the plan's receipt title, else the plan's title. Orders and donations have
no plan: they take the shop's defaults, titled with their description. `missing_fields` is what check-config and
the providers' builders refuse to send without.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.orders import item_title
from billing.plan_receipt import NO_OVERRIDES, PlanReceipt
from billing.plans import Catalogue
from db import Invoice
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


def fiscal_item(title: str, shop: FiscalShop, receipt: PlanReceipt = NO_OVERRIDES) -> FiscalItem:
    """The receipt line for goods of this title (billing.orders.item_title: a plan's title, or an order's or a
    donation's description), the plan's `receipt` overrides over the shop's defaults."""
    return FiscalItem(
        title=receipt.title or title, vat_code=_first(receipt.vat_code, shop.vat_code),
        payment_subject=receipt.payment_subject or PAYMENT_SUBJECT, payment_mode=receipt.payment_mode or PAYMENT_MODE,
        ikpu=receipt.ikpu or shop.ikpu, package_code=receipt.package_code or shop.package_code,
        vat_percent=_first(receipt.vat_percent, shop.vat_percent))


def invoice_item(invoice: Invoice, plans: Catalogue, shop: FiscalShop) -> FiscalItem:
    """The receipt line of what this invoice pays for: its plan's, or an order's or donation's (no plan)."""
    return fiscal_item(item_title(invoice, plans), shop, plans.receipt(invoice.plan))


RUSSIAN_FIELDS = ("vat_code",)
UZBEK_FIELDS = ("ikpu", "package_code", "vat_percent")


def missing_fields(item: FiscalItem, fields: tuple[str, ...]) -> list[str]:
    """Which of `fields` the item lacks (neither the plan nor the shop gives them)."""
    return [name for name in fields if getattr(item, name) in (None, "")]


def _first(override: int | None, default: int | None) -> int | None:
    """0 is a value (a VAT percent of 0), so the default stands in only for a missing override."""
    return default if override is None else override
