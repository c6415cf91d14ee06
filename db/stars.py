"""Telegram Stars documents: each charge as Telegram reported it, each Stars subscription, each invoice link.

The ledger (`operations`) stays the one record of money: a Stars charge is an Operation keyed by
`telegram_payment_charge_id` like any provider's operation. These documents keep what only Stars has:
who paid (refunds and subscription edits name the user), whether it was a renewal, when the paid
period ends, the first charge id that `editUserStarSubscription` wants, and the invoice links
already made, so a repeated /subscribe does not ask Telegram for a new one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pymongo import ASCENDING, IndexModel

from db.record import Record


class RenewalState(StrEnum):
    ACTIVE = "active"  # Telegram charges the next period itself
    CANCELED = "canceled"  # auto-renewal off (by the user in Telegram, or by the bot); paid time runs out
    FAILED = "failed"  # Telegram could not charge the renewal (e.g. too few Stars); access lapses at the end


class StarsCharge(Record):
    """One successful Stars payment, unique on its charge id (also the ledger's operation id)."""

    charge_id: str
    user_id: int  # the payer
    payload: str  # invoice_payload: our invoice label (the subscription's, on every renewal)
    label: str  # the invoice the ledger operation pays: the payload, or the renewal's own invoice
    amount: int  # whole Stars
    provider_charge_id: str | None = None  # present but meaningless for Stars; stored only
    recurring: bool = False
    first_recurring: bool = False
    expires_at: datetime | None = None  # subscription_expiration_date
    paid_at: datetime
    recorded_at: datetime

    class Settings:
        name = "stars_charges"
        indexes = [
            IndexModel([("charge_id", ASCENDING)], unique=True, name="charge_unique"),
            IndexModel([("user_id", ASCENDING), ("paid_at", ASCENDING)], name="user_paid"),
            IndexModel([("payload", ASCENDING)], name="payload"),
        ]


class StarsSubscription(Record):
    """A Stars subscription: the invoice whose link started it, and its renewal state as Telegram last told."""

    label: str  # the invoice that started it; every renewal carries it as invoice_payload
    user_id: int
    plan: str
    amount: int  # Stars per 30 days
    first_charge_id: str | None = None  # what editUserStarSubscription takes
    last_charge_id: str
    expires_at: datetime | None = None  # the latest subscription_expiration_date
    state: RenewalState = RenewalState.ACTIVE
    canceled_by_bot: bool = False  # only then may the bot turn renewal back on
    updated_at: datetime

    class Settings:
        name = "stars_subscriptions"
        indexes = [
            IndexModel([("label", ASCENDING)], unique=True, name="label_unique"),
            IndexModel([("user_id", ASCENDING)], name="user"),
        ]


class StarsLink(Record):
    """An invoice link made with createInvoiceLink, reused while its invoice is pending."""

    label: str
    url: str
    created_at: datetime

    class Settings:
        name = "stars_links"
        indexes = [IndexModel([("label", ASCENDING)], unique=True, name="label_unique")]


STARS_DOCUMENTS: list[type[Record]] = [StarsCharge, StarsSubscription, StarsLink]
