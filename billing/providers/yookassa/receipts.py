"""YooKassa's 54-FZ `receipt` object (yookassa.ru/developers, "Параметры для формирования чека" and the API
reference of POST /payments and POST /refunds): the one place that knows its fields.

`{"customer": {"email" | "phone"}, "items": [{"description" (≤ 128), "quantity", "amount": {"value",
"currency"}, "vat_code" (1-12), "payment_subject", "payment_mode"}], "tax_system_code" (1-6)}`. An item's
`amount` is its price per unit, so with quantity "1.00" the one item is the whole amount of the payment, the
renewal charge or the refund, converted from minor units only here. With YOOKASSA_RECEIPTS on, YooKassa refuses
a payment or refund without it (HTTP 400 invalid_request, "Receipt is missing or illegal", parameter receipt).
"""

from __future__ import annotations

from typing import Any

from billing.fiscal_ru import RussianReceipt
from billing.money import Money
from billing.providers.yookassa.protocol import CURRENCY, DESCRIPTION_LIMIT, amount_json

QUANTITY_ONE = "1.00"  # the docs' decimal form of the quantity; an integer or decimal number is accepted too


def receipt_json(receipt: RussianReceipt) -> dict[str, Any]:
    customer = {"email": receipt.contact.email} if receipt.contact.email else {"phone": receipt.contact.phone}
    item = receipt.item
    return {
        "customer": customer,
        "items": [{
            "description": item.title[:DESCRIPTION_LIMIT],
            "quantity": QUANTITY_ONE,
            "amount": amount_json(Money(receipt.amount, CURRENCY)),
            "vat_code": item.vat_code,
            "payment_subject": item.payment_subject,
            "payment_mode": item.payment_mode,
        }],
        "tax_system_code": receipt.tax_system_code,
    }
