"""The Merchant API methods over our Payme transactions: the state machine 1 → 2 → −2, 1 → −1.

Every transition is one conditional update whose filter names the state it leaves, followed by a
fresh read, so concurrent or repeated calls answer from what is stored (same times, same ids).

One invoice, one payment (billing.claims): a waiting transaction (state 1) HOLDS its invoice under the
key "payme:<Payme id>" until its 12-hour timeout, taken by CreateTransaction before it answers, so no
other provider and no other Payme transaction can take the invoice meanwhile; PerformTransaction turns
that hold into the FINAL claim before it records the payment, and a cancel or the timeout releases it.
Check and Create refuse an invoice another live claim holds.

PerformTransaction records the payment in the ledger *before* it marks the transaction performed:
a crash in between leaves a waiting transaction whose recorded payment a later Cancel takes back,
never a performed transaction without a payment.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from billing import claims
from billing.clock import Clock
from billing.invoices import find_invoice
from billing.ledger import Ledger, find_operation
from billing.money import Money
from billing.ports import FulfilmentQueue
from billing.providers.base import EventKind, Outcome, VerifiedEvent
from billing.providers.payme.fiscal import PaymeReceipts, read_fiscal_data
from billing.providers.payme.protocol import (
    CANCEL_REASONS,
    CANNOT_CANCEL,
    CANNOT_PERFORM,
    CURRENCY,
    NAME,
    ORDER_BUSY,
    ORDER_EXPIRED,
    ORDER_HELD,
    ORDER_NOT_FOUND,
    ORDER_NOT_IN_UZS,
    ORDER_NOT_PAYABLE,
    PAID_ELSEWHERE,
    REASON_TIMEOUT,
    RECEIPT_NOT_FOUND,
    TIME_AHEAD,
    TIMED_OUT,
    TIMEOUT_MS,
    TOO_OLD,
    TRANSACTION_NOT_FOUND,
    WRONG_AMOUNT,
    PaymeError,
    from_ms,
    param_account,
    param_amount,
    param_reason,
    param_str,
    param_time,
    to_ms,
)
from billing.receipt_links import attach_receipt
from db import Invoice, InvoiceStatus
from db.payme import PaymeState, PaymeTransaction

log = logging.getLogger(__name__)

# How far Payme's `time` may run ahead of our clock: Payme stamps a transaction just before it calls us, so
# only clock drift puts it ahead; a time further ahead would hold the invoice for that long (claims.py).
MAX_AHEAD_MS = 3_600_000


async def find_transaction(payme_id: str) -> PaymeTransaction | None:
    return await PaymeTransaction.find_one(PaymeTransaction.payme_id == payme_id)


def reversal_reason(reason: int | None) -> str:
    """What the reversal notice tells the user and the admin chat."""
    text = CANCEL_REASONS.get(reason or 0, "cancelled")
    return f"Payme: {text} (reason {reason})"


def statement_item(tx: PaymeTransaction) -> dict[str, Any]:
    return {
        "id": tx.payme_id,
        "time": tx.payme_time,
        "amount": tx.amount,
        "account": dict(tx.account),
        "create_time": tx.create_time,
        "perform_time": tx.perform_time,
        "cancel_time": tx.cancel_time,
        "transaction": str(tx.id),
        "state": int(tx.state),
        "reason": tx.reason,
        "receivers": None,
    }


async def transactions_between(start_ms: int, end_ms: int) -> list[PaymeTransaction]:
    """Every transaction CreateTransaction accepted with start ≤ Payme's time ≤ end, oldest first."""
    return await PaymeTransaction.find(
        PaymeTransaction.payme_time >= start_ms, PaymeTransaction.payme_time <= end_ms
    ).sort("payme_time", "create_time").to_list()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class PaymeMerchant:
    """One request's view of the Merchant API: the ledger, the reversal queue and the clock it acts with."""

    def __init__(
        self, *, account_field: str, cancel_after_perform: bool, ledger: Ledger, reversals: FulfilmentQueue,
        clock: Clock, receipts: PaymeReceipts | None = None,
    ) -> None:
        self._receipts = receipts  # with fiscalisation on: CheckPerformTransaction answers the receipt's detail
        self._field = account_field
        self._cancel_after_perform = cancel_after_perform
        self._ledger = ledger
        self._reversals = reversals
        self._clock = clock

    def _now_ms(self) -> int:
        return to_ms(self._clock())

    # ---- CheckPerformTransaction, CreateTransaction -------------------------------------------

    async def check_perform_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = param_amount(params)
        label, _ = param_account(params, self._field)
        invoice = await self._check_order(label, amount)
        if self._receipts is None:
            return {"allow": True}
        return {"allow": True, "detail": self._receipts.detail(invoice, self._field)}

    async def _check_order(self, label: str, amount: int, *, own: str | None = None) -> Invoice:
        """The invoice exists, costs exactly `amount` tiyin, no other live claim holds it, and it is payable.

        `own` is the claim key of the transaction asking (Create): its own hold does not refuse it. A
        waiting transaction past 12 hours no longer holds the invoice: its hold has lapsed."""
        invoice = await find_invoice(label)
        if invoice is None:
            raise PaymeError(ORDER_NOT_FOUND, self._field)
        expected = invoice.amounts.get(CURRENCY)
        if expected is None:
            raise PaymeError(ORDER_NOT_IN_UZS, self._field)
        if amount != expected:
            raise PaymeError(WRONG_AMOUNT)
        holder = claims.holder(invoice, self._clock())
        if holder is not None and holder != own:
            raise self._claimed(invoice, holder)
        if invoice.status is not InvoiceStatus.PENDING:
            raise PaymeError(ORDER_NOT_PAYABLE, self._field)
        if _aware(invoice.expires_at) <= self._clock():
            raise PaymeError(ORDER_EXPIRED, self._field)
        return invoice

    def _claimed(self, invoice: Invoice, holder: str) -> PaymeError:
        """Why another claim refuses the invoice: another Payme transaction (−31008, as Payme's sandbox
        expects), a payment recorded by another provider (paid), or another provider's live hold (busy)."""
        if holder.startswith(f"{NAME}:"):
            return PaymeError(ORDER_BUSY)
        if invoice.claim_until is None:
            return PaymeError(ORDER_NOT_PAYABLE, self._field)
        return PaymeError(ORDER_HELD, self._field)

    async def create_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        payme_id = param_str(params, "id")
        payme_time = param_time(params, "time")
        amount = param_amount(params)
        label, account = param_account(params, self._field)
        existing = await find_transaction(payme_id)
        if existing is not None:
            return await self._create_again(existing)
        key = claims.hold_key(NAME, payme_id)
        await self._check_order(label, amount, own=key)
        now = self._clock()
        if to_ms(now) - payme_time > TIMEOUT_MS:
            raise PaymeError(TOO_OLD, "time")
        if payme_time - to_ms(now) > MAX_AHEAD_MS:  # its hold would outlive any real transaction
            raise PaymeError(TIME_AHEAD, "time")
        if not await claims.claim(label, key, now=now, until=hold_until(payme_time)):
            raise await self._refusal(label)  # another claim got the invoice since the check
        tx = PaymeTransaction(
            payme_id=payme_id, payme_time=payme_time, amount=amount, label=label, account=account,
            state=PaymeState.CREATED, create_time=to_ms(now), created_at=now,
        )
        try:
            await tx.insert()
        except DuplicateKeyError:
            existing = await find_transaction(payme_id)
            if existing is None:  # the unique index said it exists; transactions are never deleted
                raise
            return await self._create_again(existing)  # the same Create, delivered twice at once
        log.info("payme transaction %s created for %s (%s tiyin)", payme_id, label, amount)
        await self._time_out_lapsed(label, payme_id)
        return _created(tx)

    async def _refusal(self, label: str) -> PaymeError:
        """The error for an invoice whose claim Create just lost."""
        invoice = await find_invoice(label)
        holder = claims.holder(invoice, self._clock()) if invoice is not None else None
        if invoice is None or holder is None:
            return PaymeError(ORDER_NOT_PAYABLE, self._field)
        return self._claimed(invoice, holder)

    async def _time_out_lapsed(self, label: str, payme_id: str) -> None:
        """Cancel (reason 4) the invoice's earlier waiting transactions whose hold had lapsed, if Payme has
        not yet done so: the new transaction's claim proves none of them is live any more."""
        waiting = await PaymeTransaction.find(
            PaymeTransaction.label == label, PaymeTransaction.state == PaymeState.CREATED,
        ).to_list()
        for stale in waiting:
            if stale.payme_id != payme_id and self._timed_out(stale):
                await self._time_out(stale)

    async def _create_again(self, tx: PaymeTransaction) -> dict[str, Any]:
        if tx.state is not PaymeState.CREATED:
            raise PaymeError(CANNOT_PERFORM)
        if self._timed_out(tx):
            raise await self._time_out(tx)
        return _created(tx)

    def _timed_out(self, tx: PaymeTransaction) -> bool:
        return self._now_ms() - tx.payme_time > TIMEOUT_MS

    # ---- PerformTransaction -------------------------------------------------------------------

    async def perform_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        tx = await self._get(params)
        if tx.state is PaymeState.PERFORMED:
            return _performed(tx)
        if tx.state is not PaymeState.CREATED:
            raise PaymeError(CANNOT_PERFORM)
        if self._timed_out(tx):
            raise await self._time_out(tx)
        if not await claims.claim(tx.label, claims.hold_key(NAME, tx.payme_id), now=self._clock()):
            raise PaymeError(PAID_ELSEWHERE)  # Payme cancels and returns the money; we record nothing
        outcome = await self._ledger.record(VerifiedEvent(
            provider=NAME, operation_id=tx.payme_id, label=tx.label, amount=Money(tx.amount, CURRENCY),
            kind=EventKind.PAYMENT, occurred_at=from_ms(tx.payme_time),
        ))
        if outcome not in (Outcome.ACCEPTED, Outcome.DUPLICATE):
            log.error("payme transaction %s: the ledger refused it (%s)", tx.payme_id, outcome.value)
            raise PaymeError(CANNOT_PERFORM)
        await PaymeTransaction.get_motor_collection().update_one(
            {"_id": tx.id, "state": int(PaymeState.CREATED)},
            {"$set": {"state": int(PaymeState.PERFORMED), "perform_time": self._now_ms()}},
        )
        fresh = await self._reread(tx)
        if fresh.state is PaymeState.PERFORMED:
            log.info("payme transaction %s performed (%s)", tx.payme_id, outcome.value)
            return _performed(fresh)
        await self._take_back(fresh)  # cancelled while we recorded the payment
        raise PaymeError(CANNOT_PERFORM)

    # ---- CancelTransaction --------------------------------------------------------------------

    async def cancel_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        reason = param_reason(params)
        tx = await self._get(params)
        for _ in range(len(PaymeState)):  # a concurrent Perform may move it from 1 to 2 under us
            if tx.state is PaymeState.CREATED:
                tx = await self._cancel_waiting(tx, reason)
            elif tx.state is PaymeState.PERFORMED:
                if not self._cancel_after_perform:
                    raise PaymeError(CANNOT_CANCEL)
                await self._transition(tx, PaymeState.PERFORMED, PaymeState.CANCELLED_AFTER_PERFORM, reason)
                tx = await self._reread(tx)
            else:
                break
        await self._take_back(tx)
        log.info("payme transaction %s cancelled: state %s, reason %s", tx.payme_id, int(tx.state), tx.reason)
        return {"transaction": str(tx.id), "cancel_time": tx.cancel_time, "state": int(tx.state)}

    async def _cancel_waiting(self, tx: PaymeTransaction, reason: int) -> PaymeTransaction:
        await self._transition(tx, PaymeState.CREATED, PaymeState.CANCELLED, reason)
        return await self._reread(tx)

    async def _time_out(self, tx: PaymeTransaction) -> PaymeError:
        """A waiting transaction past 12 hours: cancel it with reason 4; the error to answer."""
        await self._take_back(await self._cancel_waiting(tx, REASON_TIMEOUT))
        log.info("payme transaction %s timed out and was cancelled", tx.payme_id)
        return PaymeError(TIMED_OUT)

    async def _transition(self, tx: PaymeTransaction, leaving: PaymeState, entering: PaymeState, reason: int) -> None:
        """Cancel (to −1 or −2) only from `leaving`."""
        await PaymeTransaction.get_motor_collection().update_one(
            {"_id": tx.id, "state": int(leaving)},
            {"$set": {"state": int(entering), "reason": reason, "cancel_time": self._now_ms()}},
        )

    async def _take_back(self, tx: PaymeTransaction) -> None:
        """A cancelled transaction gives the invoice back: its payment, when the ledger holds one, is
        reversed (the reversal drops the claim); otherwise its hold is released. Both are safe to repeat,
        so a repeated Cancel also recovers what a crash left undone."""
        if tx.state not in (PaymeState.CANCELLED, PaymeState.CANCELLED_AFTER_PERFORM):
            return
        if await find_operation(NAME, tx.payme_id) is None:
            await claims.release(tx.label, claims.hold_key(NAME, tx.payme_id))
            return
        await self._reversals.enqueue_reversal(NAME, tx.payme_id, reversal_reason(tx.reason))

    # ---- CheckTransaction, GetStatement, SetFiscalData ----------------------------------------

    async def check_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        tx = await self._get(params)
        return {
            "create_time": tx.create_time, "perform_time": tx.perform_time, "cancel_time": tx.cancel_time,
            "transaction": str(tx.id), "state": int(tx.state), "reason": tx.reason,
        }

    async def get_statement(self, params: dict[str, Any]) -> dict[str, Any]:
        start, end = param_time(params, "from"), param_time(params, "to")
        return {"transactions": [statement_item(tx) for tx in await transactions_between(start, end)]}

    async def set_fiscal_data(self, params: dict[str, Any]) -> dict[str, Any]:
        """The receipt Payme registered for a transaction: kept per type (PERFORM, CANCEL); a repeat stores the
        same again. A sale receipt's link goes to the payment's ledger row and, once, to the payer."""
        fiscal = read_fiscal_data(params)
        stored = {**fiscal.stored, "received_at": self._now_ms()}
        result = await PaymeTransaction.get_motor_collection().update_one(
            {"payme_id": fiscal.payme_id}, {"$set": {f"fiscal_data.{fiscal.kind}": stored}})
        if result.matched_count == 0:
            raise PaymeError(RECEIPT_NOT_FOUND, "id")
        link = fiscal.link
        log.info("payme transaction %s: %s receipt %s (status %s)%s", fiscal.payme_id, fiscal.kind,
                 fiscal.stored.get("receipt_id"), fiscal.stored.get("status_code"), " with its link" if link else "")
        if link is not None and await attach_receipt(NAME, fiscal.payme_id, link):
            await self._reversals.enqueue_receipt_notice(NAME, fiscal.payme_id)
        return {"success": True}

    # ---- helpers ------------------------------------------------------------------------------

    async def _get(self, params: dict[str, Any]) -> PaymeTransaction:
        tx = await find_transaction(param_str(params, "id"))
        if tx is None:
            raise PaymeError(TRANSACTION_NOT_FOUND)
        return tx

    async def _reread(self, tx: PaymeTransaction) -> PaymeTransaction:
        fresh = await find_transaction(tx.payme_id)
        assert fresh is not None, "transactions are never deleted"
        return fresh


def hold_until(payme_time: int) -> datetime:
    """When a waiting transaction's hold lapses: the first millisecond past its 12 hours from Payme's
    `time` (at exactly 12 hours it may still be performed)."""
    return from_ms(payme_time + TIMEOUT_MS + 1)


def _created(tx: PaymeTransaction) -> dict[str, Any]:
    return {"create_time": tx.create_time, "transaction": str(tx.id), "state": int(tx.state), "receivers": None}


def _performed(tx: PaymeTransaction) -> dict[str, Any]:
    return {"transaction": str(tx.id), "perform_time": tx.perform_time, "state": int(tx.state)}
