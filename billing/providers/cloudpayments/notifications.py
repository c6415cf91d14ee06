"""What each of the seven notifications does, once its Content-HMAC has been verified.

- Check answers whether the invoice may be paid (codes 10, 11, 12, 13, 20); it changes nothing. An
  invoice another payment has claimed (any provider, before any worker has run) is refused with 13.
- Pay records the payment in the ledger once per TransactionId: Completed is fulfilled, Authorized
  (two-stage) is held until Confirm releases it. The card token rides along to the subscription.
  The reconciliation records a transaction /payments/find names through the same `payment` step, so
  Pay and the API meet on one (cloudpayments, TransactionId) row whichever comes first.
- A Pay for an invoice another payment has claimed (a terminal without Check, or a race lost) is
  `extra`: the money is taken, so Pay is answered 0 and the ledger's settle_extra job refunds it
  through the provider's `refund`; the Refund notification that follows changes nothing more.
- Fail is kept for the admin; the invoice stays payable.
- Refund and Cancel are kept, then the payment is reversed (once, through the same reversal queue as the
  admin API) when it was cancelled or its refunds add up to what was paid.
- Recurrent keeps the status of a subscription the widget created; Cancelled, Rejected or Expired ends
  what it renewed here (see `subscriptions`).
- Check of a scheduled charge is refused (13) unless the subscription still renews the local one; a refund
  or reversal of one of its payments stops it.

A Pay carrying the SubscriptionId of a subscription we know, for another transaction than its first,
is a scheduled renewal: it pays an invoice of its own (`cpr_<TransactionId>`), made for the user and
plan the subscription was set up for. Every step is idempotent, so a redelivery after a failure at
any point finishes the work without doing any of it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pymongo.errors import DuplicateKeyError

from billing.invoices import create_invoice, find_invoice
from billing.ledger import Ledger, check_payable, find_operation
from billing.plans import Plan
from billing.ports import FulfilmentQueue
from billing.providers.base import EventKind, Outcome
from billing.providers.cloudpayments.protocol import (
    NAME,
    Code,
    Kind,
    Malformed,
    Status,
    Transaction,
    money,
    read_transaction,
    reason_code,
    required,
    text,
    transaction_event,
    transaction_id,
)
from billing.providers.cloudpayments.subscriptions import StopQueue, charge_allowed, status_changed, stop_for_payment
from billing.steps import Checkpoint
from db import OperationStatus
from db.cloudpayments import CloudPaymentsNotice, CloudPaymentsSubscription

log = logging.getLogger(__name__)

STEPS = ("after_subscription_insert", "after_ledger_record", "after_notice_insert")
RENEWAL_PREFIX = "cpr_"
RENEWAL_TTL_SECONDS = 86400
TEST_REFUSED = "test_refused"
_NOT_REVERSED = (OperationStatus.REJECTED, OperationStatus.EXTRA, OperationStatus.UNVERIFIED)
_PAYABLE_REFUSAL = {
    Outcome.UNKNOWN_LABEL: Code.UNKNOWN_INVOICE,
    Outcome.ALREADY_PAID: Code.REFUSED,
    Outcome.WRONG_AMOUNT: Code.WRONG_AMOUNT,
    Outcome.WRONG_CURRENCY: Code.WRONG_AMOUNT,
}


class Queues(FulfilmentQueue, StopQueue, Protocol):
    """What notifications enqueue: fulfilment and reversals, and a CloudPayments subscription's cancellation."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: Code
    outcome: str  # for the metrics


class Notifications:
    """One notification's view of the domain: the ledger, the reversal queue, the time, the options.

    `reversals` is None for the reconciliation, which has no queue of its own and records nothing that
    CloudPayments has already taken back (it asks `taken_back` first)."""

    def __init__(self, *, ledger: Ledger, reversals: Queues | None, now: datetime, accept_test: bool,
                 checkpoint: Checkpoint) -> None:
        self._ledger = ledger
        self._reversals = reversals
        self._now = now
        self._accept_test = accept_test
        self._checkpoint = checkpoint

    async def check(self, fields: Mapping[str, str]) -> Reply:
        tx = read_transaction(fields)
        code = await self._judge(tx)
        if code is not Code.OK:
            log.info("cloudpayments check %s for %r declined with code %s", tx.transaction_id, tx.label, int(code))
        return Reply(code, f"check_{code.name.lower()}")

    async def _judge(self, tx: Transaction) -> Code:
        """Check's verdict: label (10), account (11), paid or claimed (13), amount or currency (12), expiry (20).
        A two-stage hold claims its invoice too, so a second payment of it is refused while the hold lasts."""
        if tx.test and not self._accept_test:
            log.warning("cloudpayments check %s is a test payment; CLOUDPAYMENTS_TEST_MODE is off", tx.transaction_id)
            return Code.REFUSED
        subscription = await CloudPaymentsSubscription.by_id(tx.subscription_id) if tx.subscription_id else None
        if subscription is not None:  # a scheduled charge of a subscription we set up
            if not await charge_allowed(subscription, self._now, self._reversals):
                return Code.REFUSED  # turned off, refunded, replaced or ended here
            if tx.account_id != str(subscription.user_id):
                return Code.WRONG_ACCOUNT
            expected = subscription.amounts.get(tx.amount.currency)
            return Code.OK if expected == tx.amount.minor else Code.WRONG_AMOUNT
        invoice = await find_invoice(tx.label) if tx.label else None
        if invoice is None:
            return Code.UNKNOWN_INVOICE
        if tx.account_id != str(invoice.user_id):
            return Code.WRONG_ACCOUNT
        verdict = await check_payable(invoice.label, tx.amount, exact=True, now=self._now)
        if verdict is not None:
            return _PAYABLE_REFUSAL.get(verdict, Code.REFUSED)
        if invoice.expires_at <= self._now:
            return Code.EXPIRED
        return Code.OK

    async def pay(self, fields: Mapping[str, str]) -> Reply:
        tx = read_transaction(fields)
        if tx.status not in (Status.COMPLETED, Status.AUTHORIZED):
            raise Malformed(f"Pay with Status {tx.status[:40]!r}")
        outcome = await self.payment(tx)
        return Reply(Code.OK, f"pay_{outcome.value if outcome is not None else TEST_REFUSED}")

    async def payment(self, tx: Transaction) -> Outcome | None:
        """Record a Completed (or, held, an Authorized) transaction, from Pay or from /payments/find; None when
        it is a test payment while CLOUDPAYMENTS_TEST_MODE is off (kept for review, never granted)."""
        if tx.test and not self._accept_test:
            await self._refuse_test(Kind.PAY, tx)
            return None
        label = await self._label_for(tx)
        kind = EventKind.HELD if tx.status == Status.AUTHORIZED else EventKind.PAYMENT
        return await self._record(tx, label, kind)

    async def confirm(self, fields: Mapping[str, str]) -> Reply:
        tx = read_transaction(fields)
        if tx.test and not self._accept_test:
            return await self._refuse_test(Kind.CONFIRM, tx)
        held = await find_operation(NAME, tx.transaction_id)
        label = held.label if held is not None else await self._label_for(tx)
        outcome = await self._record(tx, label, EventKind.PAYMENT)
        return Reply(Code.OK, f"confirm_{outcome.value}")

    async def _refuse_test(self, kind: Kind, tx: Transaction) -> Reply:
        """A test payment while CLOUDPAYMENTS_TEST_MODE is off: kept for review, never granted."""
        await self._keep(tx, kind=TEST_REFUSED, reason=f"test {kind.value}; CLOUDPAYMENTS_TEST_MODE is off")
        log.warning("cloudpayments %s %s for %r is a test payment; not granted (CLOUDPAYMENTS_TEST_MODE is off)",
                    kind.value, tx.transaction_id, tx.label)
        return Reply(Code.OK, f"{kind.value}_test_refused")

    async def _record(self, tx: Transaction, label: str, kind: EventKind) -> Outcome:
        outcome = await self._ledger.record(transaction_event(tx, label, kind))
        self._checkpoint("after_ledger_record")
        if outcome in (Outcome.UNKNOWN_LABEL, Outcome.WRONG_AMOUNT, Outcome.WRONG_CURRENCY):
            log.error("cloudpayments transaction %s (%s) for %r: %s; the money is taken, refund it from the "
                      "cabinet", tx.transaction_id, tx.amount, label, outcome.value)
        elif outcome is Outcome.EXTRA:
            log.warning("cloudpayments transaction %s (%s) paid %r, which another payment had claimed: refunded "
                        "through /payments/refund", tx.transaction_id, tx.amount, label)
        await self._reverse_if_taken_back(tx.transaction_id)  # a Refund or Cancel that overtook this delivery
        return outcome

    async def fail(self, fields: Mapping[str, str]) -> Reply:
        tx = read_transaction(fields)
        fresh = await self._keep(tx, kind=Kind.FAIL.value, reason=text(fields, "Reason"), code=reason_code(fields))
        log.info("cloudpayments fail %s for %r: %s (%s); the invoice stays payable", tx.transaction_id, tx.label,
                 text(fields, "Reason"), reason_code(fields))
        return Reply(Code.OK, "fail_recorded" if fresh else "fail_duplicate")

    async def refund(self, fields: Mapping[str, str]) -> Reply:
        refund_id = transaction_id(fields)
        payment_id = transaction_id(fields, "PaymentTransactionId")
        amount = money(fields)
        fresh = await CloudPaymentsNotice(
            kind=Kind.REFUND.value, key=refund_id, transaction_id=refund_id, payment_transaction_id=payment_id,
            label=fields.get("InvoiceId") or None, amount=amount.minor, currency=amount.currency,
            received_at=self._now,
        ).record()
        self._checkpoint("after_notice_insert")
        log.info("cloudpayments refund %s of payment %s: %s", refund_id, payment_id, amount)
        await self._reverse_if_taken_back(payment_id)
        return Reply(Code.OK, "refund_recorded" if fresh else "refund_duplicate")

    async def cancel(self, fields: Mapping[str, str]) -> Reply:
        payment_id = transaction_id(fields)
        amount = money(fields) if fields.get("Amount") else None
        fresh = await CloudPaymentsNotice(
            kind=Kind.CANCEL.value, key=payment_id, transaction_id=payment_id, payment_transaction_id=payment_id,
            label=fields.get("InvoiceId") or None, amount=amount.minor if amount else None,
            currency=amount.currency if amount else None, received_at=self._now,
        ).record()
        self._checkpoint("after_notice_insert")
        log.info("cloudpayments cancel of payment %s", payment_id)
        await self._reverse_if_taken_back(payment_id)
        return Reply(Code.OK, "cancel_recorded" if fresh else "cancel_duplicate")

    async def recurrent(self, fields: Mapping[str, str]) -> Reply:
        subscription_id = required(fields, "Id")[:100]
        status = required(fields, "Status")[:40]
        counts = f"{fields.get('SuccessfulTransactionsNumber', '')}:{fields.get('FailedTransactionsNumber', '')}"
        await CloudPaymentsNotice(
            kind=Kind.RECURRENT.value, key=f"{subscription_id}:{status}:{counts}"[:200], status=status,
            subscription_id=subscription_id, received_at=self._now,
        ).record()
        changed = await CloudPaymentsSubscription.set_status(subscription_id, status, self._now)
        log.info("cloudpayments subscription %s is %s%s", subscription_id, status, "" if changed else " (no change)")
        row = await CloudPaymentsSubscription.by_id(subscription_id)
        if row is not None:
            await status_changed(row, status, self._now, self._reversals)
        return Reply(Code.OK, "recurrent_recorded")

    async def _keep(self, tx: Transaction, *, kind: str, reason: str | None = None,
                    code: int | None = None) -> bool:
        return await CloudPaymentsNotice(
            kind=kind, key=tx.transaction_id, transaction_id=tx.transaction_id, label=tx.label or None,
            amount=tx.amount.minor, currency=tx.amount.currency, status=tx.status or None, reason=reason,
            reason_code=code, subscription_id=tx.subscription_id or None, received_at=self._now,
        ).record()

    async def _label_for(self, tx: Transaction) -> str:
        """The invoice a payment pays: its InvoiceId, or for a subscription's renewal an invoice of its own."""
        if not tx.subscription_id:
            return tx.label
        subscription = await CloudPaymentsSubscription.by_id(tx.subscription_id)
        if subscription is None:
            invoice = await find_invoice(tx.label) if tx.label else None
            if invoice is None or invoice.plan is None:  # an order or a donation renews nothing
                return tx.label  # nothing to renew from: the ledger refuses it (or pays the one-off invoice)
            subscription = await CloudPaymentsSubscription.register(CloudPaymentsSubscription(
                subscription_id=tx.subscription_id, label=invoice.label, first_transaction_id=tx.transaction_id,
                user_id=invoice.user_id, plan=invoice.plan, period_days=invoice.period_days,
                amounts=dict(invoice.amounts), created_at=self._now,
            ))
            self._checkpoint("after_subscription_insert")
        if subscription.first_transaction_id == tx.transaction_id:
            return subscription.label
        return await self._renewal_invoice(subscription, tx)

    async def _renewal_invoice(self, subscription: CloudPaymentsSubscription, tx: Transaction) -> str:
        label = f"{RENEWAL_PREFIX}{tx.transaction_id}"
        await CloudPaymentsSubscription.get_motor_collection().update_one(
            {"_id": subscription.id}, {"$addToSet": {"transactions": tx.transaction_id}})
        plan = Plan(name=subscription.plan, title=subscription.plan, period_days=subscription.period_days,
                    prices=dict(subscription.amounts))
        try:
            await create_invoice(plan, subscription.user_id, now=self._now, ttl_seconds=RENEWAL_TTL_SECONDS,
                                 label=label, renewal=True)
            log.info("cloudpayments subscription %s renewed by transaction %s: invoice %s",
                     subscription.subscription_id, tx.transaction_id, label)
        except DuplicateKeyError:
            pass  # made by an earlier delivery of the same renewal
        return label

    async def _reverse_if_taken_back(self, payment_id: str) -> None:
        """Reverse a recorded payment that CloudPayments cancelled or refunded in full (once: the queue
        dedupes, and reverse_payment acts once); a partial refund is only logged. An extra payment is
        settle_extra's to refund, and it never paid anything: its Refund changes nothing more."""
        operation = await find_operation(NAME, payment_id)
        if self._reversals is None or operation is None or operation.status in _NOT_REVERSED:
            return
        cancelled, refunded = await CloudPaymentsNotice.taken_back(payment_id)
        if cancelled:
            reason = "CloudPayments: payment cancelled"
        elif refunded >= operation.amount:
            reason = "CloudPayments: payment refunded"
        else:
            if refunded:
                log.warning("cloudpayments payment %s partly refunded (%s of %s minor units); the subscription "
                            "keeps its period", payment_id, refunded, operation.amount)
            return
        await self._reversals.enqueue_reversal(NAME, payment_id, reason)
        await stop_for_payment(payment_id, reason, self._now, self._reversals)


Handler = Callable[[Notifications, Mapping[str, str]], Awaitable[Reply]]
HANDLERS: dict[Kind, Handler] = {
    Kind.CHECK: Notifications.check,
    Kind.PAY: Notifications.pay,
    Kind.FAIL: Notifications.fail,
    Kind.CONFIRM: Notifications.confirm,
    Kind.REFUND: Notifications.refund,
    Kind.RECURRENT: Notifications.recurrent,
    Kind.CANCEL: Notifications.cancel,
}
