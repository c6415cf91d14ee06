"""Outbound ports of the domain: the queue it enqueues on and the notifier it tells people through."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from billing.chat_ports import ChatQueue
from billing.money import Money

log = logging.getLogger(__name__)


class FulfilmentQueue(Protocol):
    async def enqueue_fulfilment(self, provider: str, operation_id: str, label: str) -> None:
        """Enqueue successful_payment_callback; a duplicate enqueue is harmless. Raises LedgerUnavailable."""
        ...

    async def enqueue_reversal(self, provider: str, operation_id: str, reason: str) -> None:
        """Enqueue reverse_payment; a duplicate enqueue is harmless. Raises LedgerUnavailable."""
        ...

    async def enqueue_hold_notice(self, provider: str, operation_id: str) -> None:
        """Enqueue the admin notice of a held payment; a duplicate enqueue is harmless."""
        ...

    async def enqueue_extra(self, provider: str, operation_id: str) -> None:
        """Enqueue settle_extra (refund an extra payment, or list it for a manual refund); idempotent."""
        ...

    async def enqueue_stranded(self, operations: list[tuple[str, str, str]]) -> int:
        """Enqueue fulfilment for each (provider, operation_id, label) whose job is gone; returns how many."""
        ...

    async def enqueue_receipt_notice(self, provider: str, operation_id: str) -> None:
        """Enqueue the follow-up notice with the fiscal receipt's link (billing/receipt_links.py); idempotent."""
        ...


class NoticeQueue(ChatQueue, Protocol):
    def enqueue_payment_notice(self, provider: str, operation_id: str) -> None:
        """Enqueue the notice of an applied payment (called from inside a worker job)."""
        ...

    def enqueue_reversal_notice(self, provider: str, operation_id: str) -> None:
        """Enqueue the notice of a reversed payment (called from inside a worker job)."""
        ...

    def enqueue_extra_from_job(self, provider: str, operation_id: str) -> None:
        """Enqueue settle_extra from inside a worker job (fulfilment found the invoice paid by another)."""
        ...

    def enqueue_receipt_notice_from_job(self, provider: str, operation_id: str) -> None:
        """Enqueue the follow-up notice with the fiscal receipt's link, from inside a worker job; idempotent."""
        ...

    def enqueue_fiscal_receipt(self, provider: str, operation_id: str) -> None:
        """Enqueue the submission of an applied payment's fiscal receipt (a provider that fiscalises after the
        payment, such as Click), from inside the fulfilment job; idempotent."""
        ...


class EventQueue(Protocol):
    async def enqueue_event_delivery(self, event_id: str, number: int) -> None:
        """Enqueue delivery `number` (0: the first) of an outbound event; idempotent. Raises LedgerUnavailable."""
        ...


class EventNotSent(Exception):
    """No answer came from the events receiver (connection refused, timed out, dropped); the text names no path
    and no secret."""


class EventSender(Protocol):
    """POSTs an outbound event (implemented outside billing/ over an aiohttp session)."""

    async def post_event(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """The receiver's HTTP status. Raises EventNotSent when no answer came within EVENTS_TIMEOUT_SECONDS."""
        ...


class RenewalQueue(Protocol):
    """Renewal jobs and notices on RQ; each enqueue is idempotent (the job id names the attempt or the
    notice). Raises LedgerUnavailable when Redis cannot take it."""

    async def enqueue_renewal(self, user_id: int, period_end: int, run: str) -> None:
        """Run the renewal of `user_id`'s period ending at `period_end` (Unix milliseconds); `run` tells one
        scheduled run from the next (the attempt and its due time)."""
        ...

    async def enqueue_renewal_notice(self, user_id: int, period_end: int, notice: str) -> None:
        """Tell the user notice "<event>:<attempt>" about that period, once."""
        ...

    async def enqueue_forget_method(self, user_id: int, method_key: str) -> None:
        """Delete the user's saved method at the provider, then here (after auto-renewal was cancelled)."""
        ...


@dataclass(frozen=True, slots=True)
class PaymentNotice:
    user_id: int
    label: str
    plan: str
    plan_title: str
    provider: str
    amount: str
    period_end: datetime | None  # None for an order or a donation (no subscription)
    paid: Money | None = None  # the amount as Money, for a notifier that formats it in the reader's language
    kind: str = "plan"  # the invoice's kind: plan, order or donation (db.InvoiceKind)
    order_id: str | None = None  # an order's own id, as the owner gave it
    message: str | None = None  # a donation's message from the payer
    receipt_url: str | None = None  # the fiscal receipt's link, when the provider returned one before the notice


@dataclass(frozen=True, slots=True)
class ReceiptNotice:
    """The fiscal receipt's link of a payment whose notice went out before the provider returned it."""

    user_id: int
    label: str
    provider: str
    url: str


@dataclass(frozen=True, slots=True)
class FiscalRefusalNotice:
    """The provider refused a payment's fiscal receipt: the owner must issue it another way."""

    user_id: int
    label: str
    provider: str
    operation_id: str
    error_code: int | None
    error_note: str


@dataclass(frozen=True, slots=True)
class ReversalNotice:
    user_id: int
    label: str
    provider: str
    amount: str
    reason: str
    period_end: datetime | None  # the subscription's end after the period was taken back
    paid: Money | None = None
    one_off: bool = False  # an order or a donation: no subscription was touched (billing/orders.py)


@dataclass(frozen=True, slots=True)
class ExtraNotice:
    """A payment for an invoice another payment had claimed: refunded through the API, or to refund by hand."""

    user_id: int
    label: str
    provider: str
    operation_id: str
    amount: str
    refunded: bool  # True: refunded through the provider's API; False: the owner must refund it by hand
    pending: bool = False  # the provider's refund is pending: the admin chat hears again if it is canceled
    detail: str = ""  # why it is manual (no refund API, the provider's refusal)


@dataclass(frozen=True, slots=True)
class RefundCanceledNotice:
    """A refund the provider accepted as pending and then canceled: the money stays with the merchant."""

    user_id: int
    label: str
    provider: str
    refund_id: str
    amount: Money
    party: str  # who canceled it, as the provider names them ("" when it names no one)
    reason: str  # the provider's reason, e.g. YooKassa's cancellation_details.reason


@dataclass(frozen=True, slots=True)
class EventUndeliveredNotice:
    """An outbound event (billing/events) the owner's receiver never took: every scheduled delivery failed."""

    event_id: str
    type: str
    attempts: int
    error: str  # the last attempt's status or error, without the URL's path or any secret
    replays: int = 0  # `ymds events replay` runs before this give-up: each series is told of once


@dataclass(frozen=True, slots=True)
class JobFailureNotice:
    job_id: str
    description: str  # what the job was doing, e.g. "fulfil yoomoney:123 for inv_..."
    error: str  # the last line of the exception


class PayoutQueue(Protocol):
    """Payout jobs and notices on RQ; each enqueue is idempotent. Raises LedgerUnavailable."""

    async def enqueue_payout(self, label: str, round_: int = 0) -> None: ...

    async def enqueue_payout_poll(self, label: str, step: int, delay_seconds: int, series: str = "") -> None: ...

    async def enqueue_payout_notice(self, label: str, event: str, detail: str = "") -> None: ...

    async def enqueue_claim_expiry(self, label: str, delay_seconds: int) -> None: ...


@dataclass(frozen=True, slots=True)
class PayoutNotice:
    event: str  # filed, accepted, rejected, paid, failed, cancelled, expired; or an admin alert's kind
    label: str
    user_id: int
    amount: Money
    destination: str  # "•••• 1111" or "+7******4567, Сбербанк": never a full card number or phone
    reason: str = ""
    decided_by: str = ""
    konsol_id: str = ""


@dataclass(frozen=True, slots=True)
class HoldNotice:
    user_id: int
    label: str
    provider: str
    amount: str


class RenewalEvent(StrEnum):
    REMINDER = "reminder"  # the period ends soon and nothing will renew it: a link to pay
    UPCOMING = "upcoming"  # the saved method is charged soon (RENEWAL_NOTICE_DAYS ahead): the amount, a cancel
    FAILED = "failed"  # the renewal charge was declined; it is tried again at next_attempt_at
    STOPPED = "stopped"  # renewal gave up (hard decline, retries exhausted) while the period still runs
    EXPIRED = "expired"  # the subscription ended: a link to pay by hand
    METHOD_DELETED = "method_deleted"  # auto-renewal off: the saved method was deleted at the provider
    METHOD_FORGOTTEN = "method_forgotten"  # auto-renewal off: the provider cannot delete it; forgotten here
    SUBSCRIPTION_CANCELLED = "subscription_cancelled"  # auto-renewal off: the provider's subscription cancelled there


@dataclass(frozen=True, slots=True)
class RenewalNotice:
    event: RenewalEvent
    user_id: int
    plan_title: str
    period_end: datetime  # the end of the period that was (or was to be) renewed
    pay_url: str | None = None  # a fresh signed link to pay by hand
    next_attempt_at: datetime | None = None
    reason: str = ""  # the provider's decline reason
    provider: str = ""
    amount: Money | None = None  # what the coming charge takes (UPCOMING)


class Notifier(Protocol):
    async def payment_accepted(self, notice: PaymentNotice) -> None:
        """Tell the user and the admin chat; raises on a failure worth retrying."""
        ...

    async def payment_reversed(self, notice: ReversalNotice) -> None:
        """Tell the user and the admin chat that a payment was refunded or cancelled."""
        ...

    async def job_failed(self, notice: JobFailureNotice) -> None:
        """Tell the admin chat that a payment job failed for good and waits for `ymds jobs requeue`."""
        ...

    async def event_undelivered(self, notice: EventUndeliveredNotice) -> None:
        """Tell the admin chat that an outbound event was given up on (`ymds events replay` sends it again)."""
        ...

    async def receipt_ready(self, notice: ReceiptNotice) -> None:
        """Send the user the fiscal receipt's link that arrived after their payment notice."""
        ...

    async def fiscal_refused(self, notice: FiscalRefusalNotice) -> None:
        """Tell the admin chat that the provider refused a payment's fiscal receipt."""
        ...

    async def extra_payment(self, notice: ExtraNotice) -> None:
        """Tell the admin chat of an extra payment: refunded through the API, or to be refunded by hand."""
        ...

    async def payment_held(self, notice: HoldNotice) -> None:
        """Tell the admin chat that a payment is held for their confirm (two-stage), with a Confirm button."""
        ...

    async def renewal_changed(self, notice: RenewalNotice) -> None:
        """Tell the user (and, when renewal stopped or the subscription expired, the admin chat)."""
        ...

    async def refund_canceled(self, notice: RefundCanceledNotice) -> None:
        """Tell the admin chat that a pending refund was canceled by the provider (the payer keeps access)."""
        ...

    async def payout_filed(self, notice: PayoutNotice) -> None:
        """Post a new payout claim to the admin chat with Accept and Reject buttons."""
        ...

    async def payout_changed(self, notice: PayoutNotice) -> None:
        """Tell the user of a decision or an outcome (and the admin chat of an outcome)."""
        ...

    async def payout_alert(self, notice: PayoutNotice) -> None:
        """Tell the admin chat that a payout needs a person (konsol.pro waits, an unknown outcome, ...)."""
        ...


class LogNotifier:
    """Writes notices to the log; the service uses it until the Telegram notifier is configured."""

    async def payment_accepted(self, notice: PaymentNotice) -> None:
        log.info(
            "payment accepted: user=%s invoice=%s plan=%s provider=%s amount=%s active_until=%s",
            notice.user_id, notice.label, notice.plan, notice.provider, notice.amount,
            notice.period_end.isoformat() if notice.period_end else None,
        )

    async def payment_reversed(self, notice: ReversalNotice) -> None:
        log.info(
            "payment reversed: user=%s invoice=%s provider=%s amount=%s reason=%s active_until=%s",
            notice.user_id, notice.label, notice.provider, notice.amount, notice.reason,
            notice.period_end.isoformat() if notice.period_end else None,
        )

    async def payment_held(self, notice: HoldNotice) -> None:
        log.warning("payment held for confirmation: invoice=%s user=%s provider=%s amount=%s; confirm it with "
                    "POST /api/invoices/%s/confirm", notice.label, notice.user_id, notice.provider, notice.amount,
                    notice.label)

    async def renewal_changed(self, notice: RenewalNotice) -> None:
        log.info("renewal %s: user=%s plan=%s period_end=%s next_attempt=%s reason=%s pay_url=%s", notice.event.value,
                 notice.user_id, notice.plan_title, notice.period_end.isoformat(),
                 notice.next_attempt_at.isoformat() if notice.next_attempt_at else None, notice.reason or None,
                 notice.pay_url)

    async def refund_canceled(self, notice: RefundCanceledNotice) -> None:
        log.warning("refund %s of invoice %s (%s, %s) canceled by %s: %s; the subscription stays", notice.refund_id,
                    notice.label, notice.provider, notice.amount, notice.party or "the provider", notice.reason)

    async def extra_payment(self, notice: ExtraNotice) -> None:
        if notice.refunded:
            log.warning("extra payment %s:%s for invoice %s (%s) refunded through the provider", notice.provider,
                        notice.operation_id, notice.label, notice.amount)
        else:
            log.warning("extra payment %s:%s for invoice %s (%s): refund it by hand (%s), then POST "
                        "/api/extras/%s/%s/refunded", notice.provider, notice.operation_id, notice.label,
                        notice.amount, notice.detail, notice.provider, notice.operation_id)

    async def receipt_ready(self, notice: ReceiptNotice) -> None:
        log.info("fiscal receipt of invoice %s (%s) ready for user %s: %s", notice.label, notice.provider,
                 notice.user_id, notice.url)

    async def fiscal_refused(self, notice: FiscalRefusalNotice) -> None:
        log.error("%s refused the fiscal receipt of %s (invoice %s): error %s %s; issue it by hand", notice.provider,
                  notice.operation_id, notice.label, notice.error_code, notice.error_note)

    async def event_undelivered(self, notice: EventUndeliveredNotice) -> None:
        log.error("event %s (%s) not delivered after %d attempts (%s); send it again with "
                  "`ymds events replay --event %s`", notice.event_id, notice.type, notice.attempts, notice.error,
                  notice.event_id)

    async def job_failed(self, notice: JobFailureNotice) -> None:
        log.error("job %s failed for good (%s): %s; requeue it with `ymds jobs requeue %s`",
                  notice.job_id, notice.description, notice.error, notice.job_id)

    async def payout_filed(self, notice: PayoutNotice) -> None:
        log.info("payout claim %s filed: user=%s amount=%s to %s; waits for an admin", notice.label, notice.user_id,
                 notice.amount, notice.destination)

    async def payout_changed(self, notice: PayoutNotice) -> None:
        log.info("payout claim %s %s: user=%s amount=%s to %s %s", notice.label, notice.event, notice.user_id,
                 notice.amount, notice.destination, notice.reason)

    async def payout_alert(self, notice: PayoutNotice) -> None:
        log.warning("payout claim %s needs attention (%s): %s", notice.label, notice.event, notice.reason)
