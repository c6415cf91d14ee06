"""CloudPayments' 54-FZ receipts (its online kassa, CloudKassir: developers.cloudkassir.ru "Формат передачи данных
для онлайн-чека" and "Формирование кассового чека"): the one place that knows the CustomerReceipt format.

`CustomerReceipt` {`Items` [{`label` (≤ 128), `price`, `quantity`, `amount`, `vat`, `method`, `object`}],
`taxationSystem`, `email` | `phone`, `amounts` {`electronic`, `advancePayment`, `credit`, `provision`}}:
- the widget carries it in `data.CloudPayments.CustomerReceipt` (the first payment) and
  `data.CloudPayments.recurrent.customerReceipt` (each charge of the subscription it sets up);
- a token charge carries it in `JsonData` as {"CloudPayments": {"CustomerReceipt": ...}};
- a refund's receipt is issued through POST /kkt/receipt {`Inn`, `Type`: "IncomeReturn", `CustomerReceipt`,
  `InvoiceId`, `AccountId`} once the money went back (refund_receipts.py).
Codes are CloudKassir's own, derived from the shop's YooKassa-style ones: `vat` null (no VAT), 0, 10, 20,
110, 120, 5, 7, 105, 107, 22, 122 for vat_code 1-12; `taxationSystem` = tax_system_code − 1 (0 general ...
5 patent); `method` (tag 1214) 1-7 and `object` (tag 1212) by name. Amounts are exact decimals of roubles.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from billing.fiscal_ru import RussianReceipt, RussianReceiptDataMissing
from billing.providers.cloudpayments.protocol import format_amount

LABEL_LIMIT = 128
VAT = {1: None, 2: 0, 3: 10, 4: 20, 5: 110, 6: 120, 7: 5, 8: 7, 9: 105, 10: 107, 11: 22, 12: 122}
METHOD = {"full_prepayment": 1, "partial_prepayment": 2, "advance": 3, "full_payment": 4, "partial_payment": 5,
          "credit": 6, "credit_payment": 7}
OBJECT = {"commodity": 1, "excise": 2, "job": 3, "service": 4, "gambling_bet": 5, "gambling_prize": 6,
          "lottery": 7, "lottery_prize": 8, "intellectual_activity": 9, "payment": 10, "agent_commission": 11,
          "composite": 12, "another": 13, "property_right": 14, "non_operating_gain": 15, "insurance_premium": 16,
          "sales_tax": 17, "resort_fee": 18, "lien": 19, "cost": 20, "casino": 26}
INCOME_RETURN = "IncomeReturn"


def customer_receipt(receipt: RussianReceipt) -> dict[str, Any]:
    """The CustomerReceipt of one item worth the whole amount: price = amount, quantity 1, all paid by card."""
    item = receipt.item
    if item.vat_code not in VAT or item.payment_mode not in METHOD or item.payment_subject not in OBJECT:
        raise RussianReceiptDataMissing(f"the receipt of {item.title!r} has codes CloudPayments has no match for")
    amount = Decimal(format_amount(receipt.amount))
    contact = {"email": receipt.contact.email} if receipt.contact.email else {"phone": receipt.contact.phone}
    return {
        "Items": [{"label": item.title[:LABEL_LIMIT], "price": amount, "quantity": Decimal("1.00"), "amount": amount,
                   "vat": VAT[item.vat_code], "method": METHOD[item.payment_mode],
                   "object": OBJECT[item.payment_subject]}],
        "taxationSystem": receipt.tax_system_code - 1,
        **contact,
        "amounts": {"electronic": amount, "advancePayment": Decimal("0.00"), "credit": Decimal("0.00"),
                    "provision": Decimal("0.00")},
    }


def decimals_as_text(value: Any) -> Any:
    """The receipt for a JSON API body: exact decimal strings ("299.00"), which the API reads as numbers."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {key: decimals_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decimals_as_text(item) for item in value]
    return value
