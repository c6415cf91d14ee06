"""The YooKassa emulator's 54-FZ check of a `receipt`, written from YooKassa's documentation ("Параметры для
формирования чека", the API reference of POST /payments and /refunds, and the reference of parameter values),
never from open-ymds' code.

A shop with fiscalization through YooKassa needs `receipt` on every payment and refund: `customer` with an
`email` or a `phone` (ITU-T E.164 digits), 1 to 100 `items` each with a `description` (≤ 128 characters),
a `quantity` (a number or a decimal string, > 0, at most 3 decimals), an `amount` {value, currency} (the
price of one unit), a `vat_code` (1-12: 1-10 in the reference, 11 and 12 for the 22% rates since 2026),
and `payment_subject` and `payment_mode` from the reference's lists; `tax_system_code` 1-6 when given.
Σ quantity × amount must be the payment's (or refund's) amount exactly. YooKassa answers every such
failure with HTTP 400 invalid_request, "Receipt is missing or illegal", parameter `receipt`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from webhook_server.emulators.yookassa_wire import amount_minor

PAYMENT_SUBJECTS = frozenset({
    "commodity", "excise", "job", "service", "gambling_bet", "gambling_prize", "lottery", "lottery_prize",
    "intellectual_activity", "payment", "agent_commission", "composite", "another", "property_right",
    "non_operating_gain", "insurance_premium", "sales_tax", "resort_fee", "casino",  # FFD 1.05
    "marked", "non_marked", "marked_excise", "non_marked_excise", "fine", "tax", "lien", "cost",  # FFD 1.2
    "pension_insurance_without_payouts", "pension_insurance_with_payouts", "health_insurance_without_payouts",
    "health_insurance_with_payouts", "health_insurance",
})
PAYMENT_MODES = frozenset({"full_prepayment", "partial_prepayment", "advance", "full_payment", "partial_payment",
                           "credit", "credit_payment"})
VAT_CODES = range(1, 13)
TAX_SYSTEM_CODES = range(1, 7)
MAX_ITEMS = 100
DESCRIPTION_LIMIT = 128
_QUANTITY = re.compile(r"[0-9]{1,9}(\.[0-9]{1,3})?")
_PHONE = re.compile(r"[0-9]{7,15}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def receipt_problem(receipt: Any, amount: tuple[int, str]) -> str | None:
    """Why this `receipt` is not valid for an operation of `amount` (kopecks, currency); None when it is."""
    if not isinstance(receipt, dict):
        return "no receipt"
    customer = receipt.get("customer")
    if not isinstance(customer, dict) or not (_valid(_EMAIL, customer.get("email"))
                                              or _valid(_PHONE, customer.get("phone"))):
        return "customer has neither a valid email nor a valid phone"
    code = receipt.get("tax_system_code")
    if code is not None and not (_integer(code) and code in TAX_SYSTEM_CODES):
        return f"tax_system_code {code!r} is not 1-6"
    items = receipt.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        return "items must be a list of 1 to 100"
    total = Decimal(0)
    for index, item in enumerate(items):
        problem, line = _item(item)
        if problem is not None:
            return f"items[{index}]: {problem}"
        if line[1] != amount[1]:
            return f"items[{index}]: currency {line[1]} is not the payment's {amount[1]}"
        total += line[0]
    if total != amount[0]:
        return f"the items add up to {total} kopecks, the amount is {amount[0]}"
    return None


def _item(item: Any) -> tuple[str | None, tuple[Decimal, str]]:
    none = (Decimal(0), "")
    if not isinstance(item, dict):
        return "not an object", none
    description = item.get("description")
    if not isinstance(description, str) or not 1 <= len(description) <= DESCRIPTION_LIMIT:
        return "description must be 1-128 characters", none
    quantity = _quantity(item.get("quantity"))
    if quantity is None or quantity <= 0:
        return f"quantity {item.get('quantity')!r} is not a positive number with at most 3 decimals", none
    price = amount_minor(item.get("amount"))
    if price is None:
        return "amount is not {value, currency}", none
    vat = item.get("vat_code")
    if not (_integer(vat) and vat in VAT_CODES):
        return f"vat_code {vat!r} is not 1-12", none
    if item.get("payment_subject") not in PAYMENT_SUBJECTS:
        return f"payment_subject {item.get('payment_subject')!r} is not one of the reference's", none
    if item.get("payment_mode") not in PAYMENT_MODES:
        return f"payment_mode {item.get('payment_mode')!r} is not one of the reference's", none
    return None, (quantity * price[0], price[1])


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    text = str(value) if isinstance(value, int | float) else value
    if not isinstance(text, str) or not _QUANTITY.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid(pattern: re.Pattern[str], value: Any) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None
