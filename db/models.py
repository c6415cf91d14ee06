"""Beanie documents. State moves by conditional updates whose filter names the state it leaves."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from db.admin import ADMIN_DOCUMENTS
from db.chats import CHAT_DOCUMENTS
from db.click import ClickAttempt, ClickCounter
from db.click_receipts import ClickReceipt
from db.cloudpayments import CLOUDPAYMENTS_DOCUMENTS
from db.events import EVENT_DOCUMENTS
from db.payme import PAYME_DOCUMENTS
from db.payouts import PAYOUT_DOCUMENTS
from db.promo import PROMO_DOCUMENTS
from db.record import Record
from db.refunds import REFUND_DOCUMENTS
from db.renewals import RENEWAL_DOCUMENTS
from db.stars import STARS_DOCUMENTS
from db.trials import TRIAL_DOCUMENTS
from db.users import BotUser, ReceiptContact, SentNotice
from db.yookassa import YOOKASSA_DOCUMENTS


class InvoiceStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    REFUNDED = "refunded"


class InvoiceKind(StrEnum):
    PLAN = "plan"  # a plan's period: paying it extends the subscription
    ORDER = "order"  # the owner's one-off order (POST /api/invoices with amounts): paid, no subscription
    DONATION = "donation"  # an amount the payer chose on /donate: paid, no subscription


class OperationStatus(StrEnum):
    RECORDED = "recorded"  # verified and stored; fulfilment enqueued or to be enqueued
    APPLIED = "applied"  # fulfilment done: invoice paid, subscription extended
    EXTRA = "extra"  # a second payment of an already paid invoice: refund by hand
    HELD = "held"  # money not yet available (protected or unaccepted transfer): not fulfilled
    REJECTED = "rejected"  # authentic but unusable (unknown label, wrong amount or currency): for review
    REVERSED = "reversed"  # refunded or cancelled by the provider after (or instead of) being applied
    UNVERIFIED = "unverified"  # received unsigned: kept, not paid, until the provider's API confirms it
    PAYOUT = "payout"  # a konsol.pro payout's final outcome (money going out): finished as recorded, never fulfilled


class ExtraRefund(StrEnum):
    """What became of an `extra` payment (money for an invoice another payment had claimed)."""

    REFUNDED = "refunded"  # refunded through the provider's API
    REFUND_PENDING = "refund_pending"  # asked for through the API; the provider has not finished it (billing/refunds)
    MANUAL = "manual"  # the provider has no refund API (or refused): the owner refunds by hand
    REFUNDED_BY_HAND = "refunded_by_hand"  # an admin said the manual refund is done


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    PAST_DUE = "past_due"  # the renewal charge was declined; access kept while retries remain
    EXPIRED = "expired"


class RenewalConsent(BaseModel):
    """The payer's explicit "pay and renew automatically" (376-FZ), fixed on the invoice by our server before the
    provider's page opened: when, from which address, which version of the consent text they read, for which
    provider, and the terms that text showed (price and period). Without it nothing is saved for charges."""

    at: datetime
    ip: str
    text_version: str
    provider: str
    amount: int  # minor units of `currency`, as the text showed it
    currency: str
    period_days: int


class Invoice(Record):
    label: str
    user_id: int
    plan: str | None = None  # None for orders and donations (`kind`)
    amounts: dict[str, int]  # currency → minor units, fixed at creation
    period_days: int | None = None  # None for orders and donations
    status: InvoiceStatus = InvoiceStatus.PENDING
    created_at: datetime
    expires_at: datetime
    provider: str | None = None
    paid_at: datetime | None = None
    paid_by: str | None = None  # operation key "provider:operation_id"
    paid_amount: int | None = None
    paid_currency: str | None = None
    refunded_at: datetime | None = None
    claimed_by: str | None = None  # the operation key that holds the invoice (see billing/claims.py)
    claim_until: datetime | None = None  # a hold lapses then; None: a final claim by a recorded payment
    claimed_at: datetime | None = None
    auto_renew_consent: RenewalConsent | None = None  # None: pay once (nothing saved for merchant-initiated charges)
    kind: InvoiceKind = InvoiceKind.PLAN
    description: str | None = None  # orders and donations: what is paid for (the receipt's item)
    order_id: str | None = None  # orders: the owner's id; unique, as the label is derived from it (billing/orders)
    metadata: dict[str, Any] | None = None  # orders: the owner's own data, returned as given
    donor_message: str | None = None  # donations: the payer's optional message
    refunded_amount: int = 0  # minor units of paid_currency given back so far (billing/orders.py)
    refund_keys: list[str] = Field(default_factory=list)  # the refunds counted in refunded_amount, once each
    promo_code: str | None = None  # the code whose discount `amounts` already include (billing/promo.py)
    receipt_contact: ReceiptContact | None = None  # where this payment's fiscal receipt goes, fixed before paying
    renewal: bool = False  # a renewal charge's invoice (a saved method, a CloudPayments or Stars subscription)

    class Settings:
        name = "invoices"
        indexes = [
            IndexModel([("label", ASCENDING)], unique=True, name="label_unique"),
            IndexModel([("user_id", ASCENDING), ("status", ASCENDING)], name="user_status"),
            IndexModel([("kind", ASCENDING), ("status", ASCENDING)], name="kind_status"),
            IndexModel([("created_at", DESCENDING)], name="created"),  # the dashboard's newest-first invoices
            IndexModel([("status", ASCENDING), ("created_at", DESCENDING)], name="status_created"),
            # the dashboard's MRR: the paid plan invoices of the last year, a range on one index
            IndexModel([("kind", ASCENDING), ("status", ASCENDING), ("paid_at", ASCENDING)], name="kind_status_paid"),
        ]


class Operation(Record):
    """The ledger: one row per verified provider operation, unique on (provider, operation_id)."""

    provider: str
    operation_id: str
    label: str
    amount: int
    currency: str
    net_amount: int | None = None
    status: OperationStatus = OperationStatus.RECORDED
    reason: str | None = None
    payment_method: str | None = None
    payment_token: str | None = None
    period_end: datetime | None = None  # the provider's end of the period paid, where it fixes one (Stars)
    recorded_at: datetime
    applied_at: datetime | None = None
    notified_at: datetime | None = None
    reversed_at: datetime | None = None
    reversal_reason: str | None = None
    was_applied: bool = False  # set with REVERSED: whether the payment had been applied before
    reversed_from: OperationStatus | None = None  # set with REVERSED: the status it left (held: never credited)
    reversal_notified_at: datetime | None = None
    extra_refund: ExtraRefund | None = None  # EXTRA: refunded through the API, or waiting for a manual refund
    extra_detail: str | None = None  # EXTRA: why it is manual (the provider's refusal), or the refund's note
    extra_notified_at: datetime | None = None  # EXTRA: when the admin chat was told
    receipt_url: str | None = None  # the fiscal receipt's link (its QR code), once the provider returned one
    receipt_notified_at: datetime | None = None  # when the user was sent that link after the payment notice

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.operation_id}"

    class Settings:
        name = "operations"
        indexes = [
            IndexModel([("provider", ASCENDING), ("operation_id", ASCENDING)], unique=True, name="operation_unique"),
            IndexModel([("status", ASCENDING), ("recorded_at", ASCENDING)], name="status_recorded"),
            IndexModel([("label", ASCENDING)], name="label"),  # a user's payments (admin dashboard)
            IndexModel([("recorded_at", DESCENDING)], name="recorded"),  # the dashboard's newest-first list
        ]


class Subscription(Record):
    user_id: int
    plan: str
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    current_period_end: datetime
    applied_operations: list[str] = Field(default_factory=list)  # keys that already extended it
    reversed_operations: list[str] = Field(default_factory=list)  # keys whose period was taken back
    payment_method: str | None = None  # as a person reads it, e.g. "Visa •••• 4242"
    payment_provider: str | None = None
    payment_token: str | None = None  # charges the saved method again (renewals); never logged
    auto_renew: bool = False  # the user's choice: charge the saved method when the period ends (consent only)
    renewal_consent: RenewalConsent | None = None  # the consent the saved method was saved under; none: no charges
    reminded_for: datetime | None = None  # the period end a renewal reminder went out for
    cloudpayments_subscription_id: str | None = None  # the CloudPayments subscription (sc_…) renewing it by itself
    charge_reminded_for: datetime | None = None  # the period end the notice of the coming charge went out for
    version: int = 0  # optimistic concurrency for period arithmetic
    started_at: datetime | None = None  # when this run of paid periods began (created, or paid again after lapsing)
    updated_at: datetime

    class Settings:
        name = "subscriptions"
        indexes = [
            IndexModel([("user_id", ASCENDING)], unique=True, name="user_unique"),
            IndexModel([("started_at", ASCENDING)], name="started"),  # the dashboard's new subscribers
            IndexModel([("current_period_end", ASCENDING)], name="period_end"),  # and its churned ones
        ]


DOCUMENT_MODELS: list[type[Record]] = [
    Invoice, Operation, Subscription, BotUser, SentNotice, ClickAttempt, ClickCounter,
    ClickReceipt,
]
DOCUMENT_MODELS += PAYME_DOCUMENTS
DOCUMENT_MODELS += CLOUDPAYMENTS_DOCUMENTS
DOCUMENT_MODELS += YOOKASSA_DOCUMENTS
DOCUMENT_MODELS += STARS_DOCUMENTS
DOCUMENT_MODELS += PAYOUT_DOCUMENTS
DOCUMENT_MODELS += RENEWAL_DOCUMENTS
DOCUMENT_MODELS += REFUND_DOCUMENTS
DOCUMENT_MODELS += TRIAL_DOCUMENTS
DOCUMENT_MODELS += PROMO_DOCUMENTS
DOCUMENT_MODELS += ADMIN_DOCUMENTS
DOCUMENT_MODELS += EVENT_DOCUMENTS
DOCUMENT_MODELS += CHAT_DOCUMENTS
