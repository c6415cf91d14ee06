"""The payment page's "pay by card and renew automatically": pay an invoice with a card the payer's browser
has just bound (cards.create → SMS code → cards.verify, straight between the browser and Payme), so the
card's token is saved on the subscription for renewals.

The server only ever sees the token. It refuses an invoice another payment has claimed (billing.claims)
before it charges anything, checks the card (verified, recurrent), pays the invoice with
one Subscribe API receipt, and records the payment in the ledger with the card's masked number and
token, as a first payment of any provider. The receipt is bound to the invoice (PaymeCardPayment)
before it is paid: a second press, a replayed POST or a concurrent one looks that receipt up instead
of paying another, so an invoice is charged at most once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pymongo.errors import DuplicateKeyError

from billing import claims
from billing.consent import keep_consented_method
from billing.ledger import Ledger, find_operation
from billing.money import Money
from billing.providers.base import ChargeRequest, ChargeResult, ChargeStatus, Outcome, Remember, VerifiedEvent
from billing.providers.payme import Payme
from billing.providers.payme.charges import cancelled_receipt
from billing.providers.payme.protocol import CURRENCY, NAME
from db import Invoice, InvoiceStatus, Operation
from db.payme import PaymeCardPayment

log = logging.getLogger(__name__)


class BindingOutcome(StrEnum):
    PAID = "paid"  # charged (now or by an earlier press) and recorded
    ALREADY_PAID = "already_paid"  # the invoice is paid or claimed by another payment: nothing was charged
    DECLINED = "declined"  # the card was refused: nothing was charged
    PENDING = "pending"  # Payme has not finished the receipt yet
    BUSY = "busy"  # another press is paying this invoice at this moment
    NO_CONSENT = "no_consent"  # the payer did not choose "pay and renew" with Payme: nothing was charged


@dataclass(frozen=True, slots=True)
class BindingResult:
    outcome: BindingOutcome
    reason: str = ""  # DECLINED: Payme's reason, safe to show
    hard: bool = False  # DECLINED: this card cannot be used at all


class ReceiptTaken(Exception):
    """Another request bound a different receipt to the invoice first."""


async def pay_with_card(payme: Payme, ledger: Ledger, invoice: Invoice, *, token: str, description: str,
                        now: datetime) -> BindingResult:
    """Pay `invoice` (its UZS price) with the verified card `token` and record it; see the module docstring."""
    if invoice.status is not InvoiceStatus.PENDING or await _claimed_elsewhere(invoice, now):
        return BindingResult(BindingOutcome.ALREADY_PAID)
    if invoice.auto_renew_consent is None or invoice.auto_renew_consent.provider != NAME:
        return BindingResult(BindingOutcome.NO_CONSENT)  # a card saved for charges needs the payer's consent
    amount = invoice.amounts.get(CURRENCY)
    if amount is None:
        raise ValueError(f"invoice {invoice.label} has no {CURRENCY} price")
    checked = await payme.check_card(token)
    if checked.declined is not None:
        return _declined(checked.declined)
    for _ in range(2):  # a second round only after Payme cancelled the bound receipt
        slot = await _reserve(invoice.label, now)
        request = ChargeRequest(label=invoice.label, amount=Money(amount, CURRENCY), token=token,
                                idempotency_key=f"{NAME}-card:{invoice.label}", user_id=invoice.user_id,
                                description=description, known_operation_id=slot.receipt_id)
        try:
            result = await payme.charge_checked(request, _remember_for(invoice.label), checked.card)
        except ReceiptTaken:
            return BindingResult(BindingOutcome.BUSY)
        if not (slot.receipt_id and cancelled_receipt(result)):
            break
        await _release(invoice.label, slot.receipt_id)
    if result.status is ChargeStatus.PENDING:
        return BindingResult(BindingOutcome.PENDING)
    if result.status is ChargeStatus.DECLINED:
        return _declined(result)
    assert result.event is not None, "a succeeded charge carries its event"
    outcome = await ledger.record(result.event)
    if outcome is Outcome.DUPLICATE:
        await _keep_method(result.event, invoice)
    elif outcome is not Outcome.ACCEPTED:
        log.error("payme card payment %s for %s: the ledger kept it for review (%s)",
                  result.event.operation_id, invoice.label, outcome.value)
    return BindingResult(BindingOutcome.PAID)


async def _claimed_elsewhere(invoice: Invoice, now: datetime) -> bool:
    """Another payment's live claim holds the invoice. The claim of this invoice's own receipt (Payme's
    Merchant API transaction for it, or its recorded payment) is not another's: a press after it resumes."""
    holder = claims.holder(invoice, now)
    if holder is None:
        return False
    slot = await PaymeCardPayment.find_one(PaymeCardPayment.label == invoice.label)
    own = claims.hold_key(NAME, slot.receipt_id) if slot is not None and slot.receipt_id else None
    return holder != own


def _declined(result: ChargeResult) -> BindingResult:
    return BindingResult(BindingOutcome.DECLINED, reason=result.reason, hard=result.hard)


async def _reserve(label: str, now: datetime) -> PaymeCardPayment:
    """The invoice's card-payment slot: inserted once, then shared by every press."""
    try:
        slot = PaymeCardPayment(label=label, created_at=now)
        await slot.insert()
        return slot
    except DuplicateKeyError:
        existing = await PaymeCardPayment.find_one(PaymeCardPayment.label == label)
        if existing is None:  # only a concurrent delete could hide it; slots are never deleted
            raise
        return existing


def _remember_for(label: str) -> Remember:
    async def remember(receipt_id: str) -> None:
        """Bind the receipt to the invoice before it is paid; refuse if another one got there first."""
        result = await PaymeCardPayment.get_motor_collection().update_one(
            {"label": label, "receipt_id": None}, {"$set": {"receipt_id": receipt_id}}
        )
        if result.matched_count == 0:
            current = await PaymeCardPayment.find_one(PaymeCardPayment.label == label)
            if current is None or current.receipt_id != receipt_id:
                log.info("payme receipt %s for %s left unpaid: another press bound a receipt first",
                         receipt_id, label)
                raise ReceiptTaken(label)
    return remember


async def _release(label: str, receipt_id: str) -> None:
    """Unbind a receipt Payme cancelled (no one can pay it any more), so the next round makes a new one."""
    await PaymeCardPayment.get_motor_collection().update_one(
        {"label": label, "receipt_id": receipt_id}, {"$set": {"receipt_id": None}}
    )


async def _keep_method(event: VerifiedEvent, invoice: Invoice) -> None:
    """The Merchant API may have recorded this same payment first (Payme runs Perform for the receipt's
    order, see charges.py), without the card: add the card to that operation, so fulfilment saves it,
    and to the subscription (under the invoice's consent) in case fulfilment has already run."""
    operation = await find_operation(event.provider, event.operation_id)
    if operation is None or operation.payment_token is not None:
        return
    await Operation.get_motor_collection().update_one(
        {"_id": operation.id, "payment_token": None},
        {"$set": {"payment_method": event.payment_method, "payment_token": event.payment_token}},
    )
    operation.payment_method, operation.payment_token = event.payment_method, event.payment_token
    await keep_consented_method(invoice, operation)
