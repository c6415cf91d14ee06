"""Money as integer minor units with a currency code; never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# ISO 4217 minor-unit exponents of the currencies we sell in; a provider may report others.
MINOR_DIGITS: dict[str, int] = {"RUB": 2, "UZS": 2, "XTR": 0}
DEFAULT_MINOR_DIGITS = 2  # ISO 4217's usual exponent, for a code the table does not list
UNSETTLED_PREFIX = "unsettled:"
# What one order or donation may ask for, in minor units (billing/orders.py): from one major unit to a bound no real
# order in these currencies reaches (1 000 000 RUB, 100 000 000 UZS), far inside every provider's integer fields.
ORDER_LIMITS: dict[str, tuple[int, int]] = {"RUB": (100, 100_000_000), "UZS": (100, 10_000_000_000)}


@dataclass(frozen=True, slots=True, order=True)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError("Money.minor must be an int of minor units")
        if not isinstance(self.currency, str) or not self.currency:
            raise ValueError("Money.currency must be a currency code")

    def __str__(self) -> str:
        digits = MINOR_DIGITS.get(self.currency, DEFAULT_MINOR_DIGITS)
        if digits == 0:
            return f"{self.minor} {self.currency}"
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), 10**digits)
        return f"{sign}{whole}.{frac:0{digits}d} {self.currency}"


def minor_units(amount: Decimal, currency: str) -> int | None:
    """A decimal amount in major units as `currency`'s own minor units, exactly; None when it is finer than
    that unit (XTR has no minor unit: "2.50" is no number of Stars, never 250 of them).

    `amount` must already be bounded by its caller's pattern (a few digits): no huge exponent reaches here."""
    scaled = amount.scaleb(MINOR_DIGITS.get(currency, DEFAULT_MINOR_DIGITS))
    if scaled != scaled.to_integral_value():
        return None
    return int(scaled)


def unsettled(currency: str) -> str:
    """How an event names money in a currency its provider does not settle in (UZS or XTR at a rouble acquirer).

    Plans are priced only in MINOR_DIGITS' codes, so no invoice has a price in this one: the ledger keeps the
    event for review as wrong_currency and it never pays, while the provider's own code stays readable."""
    return f"{UNSETTLED_PREFIX}{currency or 'none'}"
