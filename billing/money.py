"""Money as integer minor units with a currency code; never a float."""

from __future__ import annotations

from dataclasses import dataclass

# ISO 4217 minor-unit exponents of the currencies we sell in; a provider may report others.
MINOR_DIGITS: dict[str, int] = {"RUB": 2, "UZS": 2, "XTR": 0}


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
        digits = MINOR_DIGITS.get(self.currency, 2)
        if digits == 0:
            return f"{self.minor} {self.currency}"
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), 10**digits)
        return f"{sign}{whole}.{frac:0{digits}d} {self.currency}"
