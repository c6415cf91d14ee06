"""Promo and gift codes, and who redeemed them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pymongo import ASCENDING, IndexModel

from db.record import Record


class PromoKind(StrEnum):
    PERCENT = "percent"  # percent_off of every price of the plans it applies to
    FIXED = "fixed"  # amounts_off per currency, in minor units
    GIFT = "gift"  # gift_days of gift_plan, granted without payment


class PromoCode(Record):
    """`uses_left` is what the conditional `$inc` tests (`uses_left > 0`), so concurrent redemptions never pass
    `max_uses`: the filter and the decrement are one atomic update on one document."""

    code: str  # upper case: codes are case-insensitive
    kind: PromoKind
    percent_off: int | None = None
    amounts_off: dict[str, int] | None = None
    gift_plan: str | None = None
    gift_days: int | None = None
    plans: list[str]  # the plans it applies to; empty: every plan
    max_uses: int
    uses_left: int
    expires_at: datetime | None = None
    created_at: datetime

    class Settings:
        name = "promo_codes"
        indexes = [IndexModel([("code", ASCENDING)], unique=True, name="code_unique")]


class PromoRedemption(Record):
    """One user's use of one code: once per user per code (the unique index)."""

    code: str
    user_id: int
    at: datetime
    label: str | None = None  # the discounted invoice it made (none for a gift)
    released: bool = False  # its invoice expired unpaid and the use was given back

    class Settings:
        name = "promo_redemptions"
        indexes = [IndexModel([("code", ASCENDING), ("user_id", ASCENDING)], unique=True, name="code_user_unique")]


PROMO_DOCUMENTS: list[type[Record]] = [PromoCode, PromoRedemption]
