"""Payme's fiscal receipts: the `detail` CheckPerformTransaction answers, and SetFiscalData's receipt data.

With fiscalisation on, Payme registers the receipt with the tax authority itself, from the `detail` our
CheckPerformTransaction answer gives (developer.help.paycom.uz, CheckPerformTransaction and receipts.create):
`receipt_type` 0 (a sale) and items of `title`, `price` (tiyin, per unit), `count`, `code` (the IKPU),
`package_code` and `vat_percent`. Payme checks that Σ price·count − discount (+ shipping) is the amount, so
the one item is the plan at the invoice's price, count 1. Once the receipt is registered, Payme calls
SetFiscalData (id, type PERFORM or CANCEL, fiscal_data {receipt_id, status_code, message, terminal_id,
fiscal_sign, qr_code_url, date}); the data is kept per transaction and type, and a sale's `qr_code_url`
becomes the payment's receipt link (billing/receipt_links.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from billing.fiscal import FiscalShop, invoice_item
from billing.fiscal_uz import ReceiptDataMissing, UzbekItem, uzbek_item
from billing.plans import Catalogue
from billing.providers.payme.protocol import (
    CURRENCY,
    INVALID_PARAMS,
    MAX_ID_LENGTH,
    SYSTEM_ERROR,
    PaymeError,
)
from billing.receipt_links import receipt_url
from db import Invoice

log = logging.getLogger(__name__)

RECEIPT_TYPE_SALE = 0  # Payme's receipt_type for a sale (0); 1 would be a prepayment
FISCAL_TYPES = ("PERFORM", "CANCEL")
SALE = "PERFORM"
TEXT_FIELDS = ("message", "terminal_id", "fiscal_sign", "date")
MAX_TEXT = 256
ACCEPTED = 0  # status_code of a receipt the tax authority accepted (Payme's example: 0, "accepted")


def receipt_detail(item: UzbekItem, amount: int) -> dict[str, Any]:
    """The `detail` object for one item worth the whole `amount` (tiyin): its sum is the amount exactly."""
    return {"receipt_type": RECEIPT_TYPE_SALE, "items": [{
        "title": item.title, "price": amount, "count": 1, "code": item.ikpu, "package_code": item.package_code,
        "vat_percent": item.vat_percent,
    }]}


class PaymeReceipts:
    """The receipts of one shop: its seller data, and the plans their items are read from."""

    def __init__(self, plans: Catalogue, shop: FiscalShop) -> None:
        self._plans = plans
        self._shop = shop

    def detail(self, invoice: Invoice, account_field: str) -> dict[str, Any]:
        """The invoice's `detail`: one item, the plan's title or the order's description."""
        try:
            item = uzbek_item(invoice_item(invoice, self._plans, self._shop))
        except ReceiptDataMissing as err:  # check-config refuses this; a plans file edited under us
            log.error("payme: no receipt for invoice %s: %s; answered a system error", invoice.label, err)
            raise PaymeError(SYSTEM_ERROR) from None
        return receipt_detail(item, invoice.amounts[CURRENCY])


@dataclass(frozen=True, slots=True)
class FiscalData:
    """One SetFiscalData call, checked."""

    payme_id: str
    kind: str  # PERFORM or CANCEL
    stored: dict[str, Any]  # the fiscal_data fields Payme documents, as they are kept

    @property
    def link(self) -> str | None:
        """The sale receipt's link to give the payer: an accepted PERFORM receipt's http(s) qr_code_url."""
        if self.kind != SALE or self.stored.get("status_code", ACCEPTED) != ACCEPTED:
            return None
        return receipt_url(self.stored.get("qr_code_url"))


def read_fiscal_data(params: dict[str, Any]) -> FiscalData:
    """SetFiscalData's params; anything missing or of the wrong type is −32602 naming it. Payme's table types
    receipt_id as a string and its example sends a number: both are taken."""
    payme_id, kind, data = params.get("id"), params.get("type"), params.get("fiscal_data")
    if not isinstance(payme_id, str) or not 0 < len(payme_id) <= MAX_ID_LENGTH:
        raise PaymeError(INVALID_PARAMS, "id")
    if kind not in FISCAL_TYPES:
        raise PaymeError(INVALID_PARAMS, "type")
    if not isinstance(data, dict):
        raise PaymeError(INVALID_PARAMS, "fiscal_data")
    stored: dict[str, Any] = {}
    receipt_id = data.get("receipt_id")
    if receipt_id is not None:
        if isinstance(receipt_id, bool) or not isinstance(receipt_id, (str, int)) or len(str(receipt_id)) > MAX_TEXT:
            raise PaymeError(INVALID_PARAMS, "fiscal_data.receipt_id")
        stored["receipt_id"] = receipt_id
    status = data.get("status_code")
    if status is not None:
        if isinstance(status, bool) or not isinstance(status, int) or abs(status) > 2**31:
            raise PaymeError(INVALID_PARAMS, "fiscal_data.status_code")
        stored["status_code"] = status
    for name in TEXT_FIELDS:
        value = data.get(name)
        if value is not None:
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                raise PaymeError(INVALID_PARAMS, f"fiscal_data.{name}")
            stored[name] = value
    url = data.get("qr_code_url")
    if url is not None:
        if not isinstance(url, str) or (url and receipt_url(url) is None):
            raise PaymeError(INVALID_PARAMS, "fiscal_data.qr_code_url")
        stored["qr_code_url"] = url
    return FiscalData(payme_id, kind, stored)
