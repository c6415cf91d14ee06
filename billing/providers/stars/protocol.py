"""What Telegram Stars are on the wire, as plain data: invoices to create, payments and pre-checkout
queries to read, Star transactions to reconcile, and the Bot API calls the provider needs.

There is no notification URL: Stars payments reach us as bot updates (`pre_checkout_query`, a message
with `successful_payment`, `subscription`), which the bot's handlers turn into plain mappings before
calling this module. The Bot API calls go through `StarsApi`, implemented over the bot's client
outside billing/ (bot/stars_api.py), so nothing here imports aiogram.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from billing.invoices import LABEL_PREFIX
from billing.money import Money, unsettled
from billing.providers.base import (
    EventKind,
    NotificationRejected,
    ProviderRejected,
    RejectReason,
    VerifiedEvent,
)

NAME = "telegram_stars"
CURRENCY = "XTR"  # Telegram Stars: whole Stars, no minor units
SUBSCRIPTION_PERIOD_SECONDS = 2592000  # the one period Telegram allows: 30 days
MAX_SUBSCRIPTION_STARS = 10000  # Bot API 9.0 (2500 before)
TITLE_MAX_CHARS = 32
DESCRIPTION_MAX_CHARS = 255
PAYLOAD_MAX_BYTES = 128
MAX_TRANSACTIONS_PAGE = 100
INVOICE_PAYMENT = "invoice_payment"


class NotSellable(ValueError):
    """The invoice cannot be sold in Stars: no XTR price, or one Telegram would refuse."""


class AlreadyRefunded(ProviderRejected):
    """refundStarPayment said the charge was refunded already: the Stars are back with the payer."""


class Refusal(StrEnum):
    """Why a pre-checkout query is answered ok=false; each has a text in the user's language."""

    NOT_FOUND = "not_found"
    ALREADY_PAID = "already_paid"
    EXPIRED = "expired"
    AMOUNT_CHANGED = "amount_changed"
    OTHER_USER = "other_user"
    NOT_SELLING = "not_selling"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class StarsInvoice:
    """What sendInvoice / createInvoiceLink get: exactly one price, in whole Stars, payload = our label."""

    title: str
    description: str
    payload: str
    amount: int
    subscription_period: int | None = None  # SUBSCRIPTION_PERIOD_SECONDS for a subscription link

    def prices(self) -> list[dict[str, Any]]:
        return [{"label": self.title, "amount": self.amount}]


def stars_price(amounts: Mapping[str, int]) -> int | None:
    return amounts.get(CURRENCY)


def build_invoice(label: str, amounts: Mapping[str, int], *, title: str, description: str,
                  subscription: bool) -> StarsInvoice:
    """The Stars invoice for one of our invoices, within Telegram's limits; NotSellable when it has none."""
    amount = stars_price(amounts)
    if amount is None or amount <= 0:
        raise NotSellable(f"invoice {label} has no {CURRENCY} price")
    if subscription and amount > MAX_SUBSCRIPTION_STARS:
        raise NotSellable(f"a Stars subscription costs at most {MAX_SUBSCRIPTION_STARS} Stars, not {amount}")
    if not label or len(label.encode()) > PAYLOAD_MAX_BYTES:
        raise NotSellable(f"invoice label must be 1-{PAYLOAD_MAX_BYTES} bytes")
    return StarsInvoice(
        title=_clip(title, TITLE_MAX_CHARS) or label[:TITLE_MAX_CHARS],
        description=_clip(description, DESCRIPTION_MAX_CHARS) or label,
        payload=label, amount=amount,
        subscription_period=SUBSCRIPTION_PERIOD_SECONDS if subscription else None,
    )


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class PreCheckout:
    query_id: str
    payer_id: int
    currency: str
    amount: int
    payload: str

    @property
    def money(self) -> Money:
        """What the payer is asked, in whole Stars; a query in any other currency (a rouble invoice sent through
        a payments provider) is money Stars do not settle, which no invoice's price can match."""
        return Money(self.amount, CURRENCY if self.currency == CURRENCY else unsettled(self.currency))


@dataclass(frozen=True, slots=True)
class StarsPayment:
    """A `successful_payment` in Stars, read and checked for shape (the update itself is authentic:
    it came from Telegram through the webhook's secret token or our own getUpdates)."""

    charge_id: str  # telegram_payment_charge_id: the ledger's operation id
    payer_id: int
    payload: str
    amount: int
    paid_at: datetime
    provider_charge_id: str | None = None
    expires_at: datetime | None = None  # subscription_expiration_date
    recurring: bool = False
    first_recurring: bool = False

    @property
    def renewal(self) -> bool:
        """A subscription's later charge: it carries the first invoice's payload, already paid."""
        return self.recurring and not self.first_recurring

    @property
    def money(self) -> Money:
        return Money(self.amount, CURRENCY)


@dataclass(frozen=True, slots=True)
class StarsRefund:
    """A `refunded_payment` service message."""

    charge_id: str
    payload: str
    amount: int


@dataclass(frozen=True, slots=True)
class StarTransaction:
    """One entry of getStarTransactions. Incoming invoice payments have `id` = the charge id; a refund
    is an outgoing entry with the same `id` as the charge it returns."""

    id: str
    amount: int
    date: datetime
    incoming: bool
    user_id: int | None = None
    kind: str | None = None  # transaction_type of a user partner, e.g. invoice_payment
    payload: str | None = None
    subscription_period: int | None = None

    @property
    def invoice_payment(self) -> bool:
        return self.user_id is not None and self.kind == INVOICE_PAYMENT


def read_pre_checkout(fields: Mapping[str, Any], *, payer_id: int) -> PreCheckout:
    return PreCheckout(
        query_id=_text(fields, "id"), payer_id=payer_id, currency=_text(fields, "currency"),
        amount=_count(fields, "total_amount"), payload=_text(fields, "invoice_payload"),
    )


def read_payment(fields: Mapping[str, Any], *, payer_id: int, date: datetime | int) -> StarsPayment:
    """A successful_payment's fields (as the Bot API names them). NotificationRejected when they are
    not a Stars payment's."""
    if fields.get("currency") != CURRENCY:
        raise NotificationRejected(RejectReason.MALFORMED, f"currency {fields.get('currency')!r} is not {CURRENCY}")
    expires = fields.get("subscription_expiration_date")
    return StarsPayment(
        charge_id=_text(fields, "telegram_payment_charge_id"), payer_id=payer_id,
        payload=_text(fields, "invoice_payload"), amount=_count(fields, "total_amount"),
        paid_at=_moment(date), provider_charge_id=_optional_text(fields, "provider_payment_charge_id"),
        expires_at=_moment(expires) if expires is not None else None,
        recurring=fields.get("is_recurring") is True, first_recurring=fields.get("is_first_recurring") is True,
    )


def read_refund(fields: Mapping[str, Any]) -> StarsRefund:
    if fields.get("currency", CURRENCY) != CURRENCY:
        raise NotificationRejected(RejectReason.MALFORMED, "refunded_payment is not in Stars")
    return StarsRefund(charge_id=_text(fields, "telegram_payment_charge_id"),
                       payload=_text(fields, "invoice_payload"), amount=_count(fields, "total_amount"))


def read_transaction(fields: Mapping[str, Any]) -> StarTransaction:
    """A StarTransaction as the Bot API returns it (TransactionPartner in `source` or `receiver`)."""
    source, receiver = fields.get("source"), fields.get("receiver")
    partner = source if isinstance(source, Mapping) else receiver if isinstance(receiver, Mapping) else {}
    user = partner.get("user") if partner.get("type") == "user" else None
    user_id = user.get("id") if isinstance(user, Mapping) else None
    period = partner.get("subscription_period")
    return StarTransaction(
        id=_text(fields, "id"), amount=_count(fields, "amount", positive=False), date=_moment(fields.get("date")),
        incoming=isinstance(source, Mapping),
        user_id=user_id if isinstance(user_id, int) and not isinstance(user_id, bool) else None,
        kind=_optional_text(partner, "transaction_type"), payload=_optional_text(partner, "invoice_payload"),
        subscription_period=period if isinstance(period, int) and not isinstance(period, bool) else None,
    )


def payment_event(payment: StarsPayment, label: str) -> VerifiedEvent:
    """The ledger's event: the charge id is the operation id, never the payload (renewals reuse it). A
    subscription charge's period ends at Telegram's subscription_expiration_date, on Telegram's clock."""
    return VerifiedEvent(provider=NAME, operation_id=payment.charge_id, label=label, amount=payment.money,
                         kind=EventKind.PAYMENT, occurred_at=payment.paid_at, period_end=payment.expires_at)


def renewal_label(charge_id: str) -> str:
    """The invoice a renewal pays: shaped like every label, fixed by the charge, so a redelivery finds it."""
    return LABEL_PREFIX + hashlib.sha256(f"{NAME}:renewal:{charge_id}".encode()).hexdigest()[:24]


class StarsApi(Protocol):
    """The Bot API calls Stars need, over the bot's client. Every method raises ProviderRejected when
    Telegram refuses the request (AlreadyRefunded for a second refund) and ProviderUnavailable when
    Telegram cannot be reached or fails (network, 5xx, 429)."""

    async def create_invoice_link(self, invoice: StarsInvoice) -> str: ...

    async def send_invoice(self, chat_id: int, invoice: StarsInvoice) -> None: ...

    async def refund(self, user_id: int, charge_id: str) -> None: ...

    async def edit_subscription(self, user_id: int, charge_id: str, *, canceled: bool) -> None: ...

    async def transactions(self, offset: int, limit: int) -> list[Mapping[str, Any]]: ...


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise NotificationRejected(RejectReason.MALFORMED, f"{name} is missing or not a string")
    return value


def _optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) and value else None


def _count(fields: Mapping[str, Any], name: str, *, positive: bool = True) -> int:
    value = fields.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or (positive and value <= 0) or value < 0:
        raise NotificationRejected(RejectReason.MALFORMED, f"{name} is not a whole number of Stars")
    return value


def _moment(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return datetime.fromtimestamp(value, UTC)
    raise NotificationRejected(RejectReason.MALFORMED, "date is not a unix time")
