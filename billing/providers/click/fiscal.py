"""Click's fiscalisation API (docs.click.uz/fiscalization): the receipt's items, their submission, the receipt's link.

`POST {CLICK_API_URL}/payment/ofd_data/submit_items` with the Merchant API `Auth` header and
`{service_id, payment_id, items, received_ecash, received_cash, received_card}` (amounts in tiyin). An item is
`Name`, `SPIC` (the IKPU), `PackageCode`, `Price` (the position's total in tiyin), `Amount` (the quantity),
`VAT` (tiyin), `VATPercent`, `CommissionInfo` {`TIN` (9 digits) or `PINFL` (14 digits)}; `GoodPrice` (one
unit's price) is optional. Click answers `{error_code, error_note}`: 0 accepted, negative refused.
`GET {CLICK_API_URL}/payment/ofd_data/{service_id}/{payment_id}` answers the registered receipt's
`qrCodeURL` (a third-party capture of Click's docs shows `{paymentId, qrCodeURL}` without error_code).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.errors import ProviderUnavailable
from billing.fiscal_uz import UzbekItem
from billing.providers.click.merchant import MerchantApi, integer
from billing.receipt_links import receipt_url

SUBMIT_PATH = "/payment/ofd_data/submit_items"
MAX_NAME = 63  # Click's Name is string(63)
TIN_LENGTH, PINFL_LENGTH = 9, 14
MAX_NOTE = 500


def vat_amount(price: int, percent: int) -> int:
    """The VAT inside a price that includes it, in whole tiyin, half up: 2 000 000 at 12 % → 214 286."""
    return (2 * price * percent + 100 + percent) // (2 * (100 + percent))


def commission_info(seller_tin: str) -> dict[str, str]:
    """CommissionInfo: a 9-digit TIN (a company) or a 14-digit PINFL (a person). Raises ValueError otherwise."""
    if seller_tin.isdigit() and len(seller_tin) == TIN_LENGTH:
        return {"TIN": seller_tin}
    if seller_tin.isdigit() and len(seller_tin) == PINFL_LENGTH:
        return {"PINFL": seller_tin}
    raise ValueError("the seller's TIN must be 9 digits (TIN) or 14 digits (PINFL)")


def submit_body(*, service_id: int, payment_id: int, item: UzbekItem, amount: int, seller_tin: str
                ) -> dict[str, Any]:
    """One item, count 1, at the whole amount paid by card: the items add up to the payment exactly."""
    return {
        "service_id": service_id, "payment_id": payment_id,
        "items": [{
            "Name": item.title[:MAX_NAME], "SPIC": item.ikpu, "PackageCode": item.package_code, "GoodPrice": amount,
            "Price": amount, "Amount": 1, "VAT": vat_amount(amount, item.vat_percent),
            "VATPercent": item.vat_percent, "CommissionInfo": commission_info(seller_tin),
        }],
        "received_ecash": 0, "received_cash": 0, "received_card": amount,
    }


@dataclass(frozen=True, slots=True)
class SubmitAnswer:
    """Click's word on a submission: accepted (error_code 0) or refused, with its code and note."""

    accepted: bool
    http_status: int
    error_code: int | None
    error_note: str


async def submit_items(api: MerchantApi, body: dict[str, Any], *, now: datetime) -> SubmitAnswer:
    """POST submit_items. An answer with an error_code, or any 4xx, is Click's word; a 5xx, a network failure or
    a 2xx without error_code leaves the outcome unknown: ProviderUnavailable (the job is retried)."""
    status, reply = await api.call("POST", SUBMIT_PATH, now=now, body=body)
    code = integer(reply, "error_code") if isinstance(reply, dict) else None
    note = str(reply.get("error_note", ""))[:MAX_NOTE] if isinstance(reply, dict) else ""
    if status >= 500 or (code is None and status < 400):
        raise ProviderUnavailable(f"Click submit_items answered HTTP {status}" + (f" {note}" if note else ""))
    return SubmitAnswer(status in (200, 201) and code == 0, status, code, note)


async def receipt_link(api: MerchantApi, payment_id: int, *, now: datetime) -> str | None:
    """The registered receipt's link (ofd_data's qrCodeURL); None when Click has none for the payment. Raises
    ProviderUnavailable when Click cannot be asked (network, 5xx)."""
    status, reply = await api.call("GET", f"/payment/ofd_data/{api.service_id}/{payment_id}", now=now)
    if status >= 500:
        raise ProviderUnavailable(f"Click ofd_data answered HTTP {status}")
    if status not in (200, 201) or not isinstance(reply, dict) or integer(reply, "error_code") not in (None, 0):
        return None
    return receipt_url(reply.get("qrCodeURL"))
