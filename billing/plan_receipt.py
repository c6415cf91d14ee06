"""A plan's own fiscal data (plans.toml `receipt = {...}`): what its receipt line says where it differs from the
shop-wide defaults in settings (billing/fiscal.py merges the two).

Every field is optional; one given is checked as the receipt's owner would: YooKassa's vat_code 1-12 and its
payment_mode values, a payment_subject written as YooKassa spells them (lower-case words joined by "_"; the list
grows with the fiscal data formats, so it is not closed here), Uzbekistan's 17-digit IKPU, a package code and a
VAT percent. A key we do not know is refused, so a misspelt field is not silently replaced by the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_TITLE_LENGTH = 128  # YooKassa's item description and CloudPayments' label both take up to 128 characters
PAYMENT_MODES = frozenset({"full_prepayment", "partial_prepayment", "advance", "full_payment", "partial_payment",
                           "credit", "credit_payment"})
PAYMENT_SUBJECT = re.compile(r"[a-z]+(_[a-z0-9]+)*")
IKPU = re.compile(r"[0-9]{17}")
MAX_PACKAGE_CODE_LENGTH = 20
VAT_CODES = range(1, 13)
VAT_PERCENTS = range(0, 101)


@dataclass(frozen=True, slots=True)
class PlanReceipt:
    """The plan's overrides; None keeps the shop's default (or, for the title, the plan's title)."""

    title: str | None = None
    vat_code: int | None = None
    payment_subject: str | None = None
    payment_mode: str | None = None
    ikpu: str | None = None
    package_code: str | None = None
    vat_percent: int | None = None


NO_OVERRIDES = PlanReceipt()
FIELDS = tuple(PlanReceipt.__dataclass_fields__)


def parse_receipt(where: str, value: Any) -> PlanReceipt:
    """The plan's `receipt` table, checked; ValueError names the field (`where` names the plan)."""
    if value is None:
        return NO_OVERRIDES
    if not isinstance(value, dict):
        raise ValueError(f"{where}: receipt must be a table, e.g. receipt = {{vat_code = 1}}")
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise ValueError(f"{where}: receipt has no field {unknown[0]!r} (known: {', '.join(FIELDS)})")
    title = value.get("title")
    if title is not None and (not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE_LENGTH):
        raise ValueError(f"{where}: receipt.title must be text of 1 to {MAX_TITLE_LENGTH} characters")
    subject = value.get("payment_subject")
    if subject is not None and (not isinstance(subject, str) or not PAYMENT_SUBJECT.fullmatch(subject)):
        raise ValueError(f"{where}: receipt.payment_subject must be a YooKassa payment_subject such as \"service\"")
    mode = value.get("payment_mode")
    if mode is not None and mode not in PAYMENT_MODES:
        raise ValueError(f"{where}: receipt.payment_mode must be one of {', '.join(sorted(PAYMENT_MODES))}")
    ikpu = value.get("ikpu")
    if ikpu is not None and (not isinstance(ikpu, str) or not IKPU.fullmatch(ikpu)):
        raise ValueError(f"{where}: receipt.ikpu must be the 17 digits of the IKPU (SPIC), as a string")
    package = value.get("package_code")
    if package is not None and (not isinstance(package, str) or not 0 < len(package) <= MAX_PACKAGE_CODE_LENGTH):
        raise ValueError(f"{where}: receipt.package_code must be text of 1 to {MAX_PACKAGE_CODE_LENGTH} characters")
    return PlanReceipt(title=title, vat_code=_integer(where, value, "vat_code", VAT_CODES), payment_subject=subject,
                       payment_mode=mode, ikpu=ikpu, package_code=package,
                       vat_percent=_integer(where, value, "vat_percent", VAT_PERCENTS))


def _integer(where: str, value: dict[str, Any], name: str, allowed: range) -> int | None:
    number = value.get(name)
    if number is None:
        return None
    if not isinstance(number, int) or isinstance(number, bool) or number not in allowed:
        raise ValueError(f"{where}: receipt.{name} must be an integer from {allowed.start} to {allowed.stop - 1}")
    return number
