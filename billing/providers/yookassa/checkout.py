"""The payment page's YooKassa button: open (or reuse) the invoice's payment and say where the payer goes.

One payment per attempt whatever the presses: the attempt is reserved under its Idempotence-Key with the
exact request body before the API is called (db/yookassa.py), so every retry gets YooKassa's same answer.
A payment found already decided is settled on the spot exactly as its notification would settle it
(`Settle`, the provider's one path for a fetched Payment), so a lost `payment.succeeded` is not needed.

`save_payment_method` is the payer's decision, not the shop's: YOOKASSA_SAVE_PAYMENT_METHOD only permits
it, and it is sent true only when the invoice carries the payer's consent for YooKassa (billing/consent.py).
An open attempt made under the other choice is left to lapse and the next attempt is made, so a card is
saved exactly when the payer last chose "pay and renew" before paying (should both be paid, the second
is an extra payment, refunded as any other).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.errors import ProviderUnavailable
from billing.invoices import find_invoice
from billing.providers.base import Outcome
from billing.providers.yookassa.protocol import (
    NAME,
    ApiClient,
    cancellation,
    confirmation_url,
    create_key,
    payment_status,
)
from db.yookassa import YooKassaPayment, YooKassaStatus, latest_attempt, record_created, reserve

MAX_CREATE_ROUNDS = 4  # a press can meet a cancelled attempt, reserve the next, and lose a race once more
# A fetched Payment settled as its notification would settle it → a name for the metrics and logs, and the
# ledger's outcome when it was recorded (a succeeded payment).
Settle = Callable[[Mapping[str, Any]], Awaitable[tuple[str, Outcome | None]]]


@dataclass(frozen=True, slots=True)
class Checkout:
    """Where the button sends the payer: YooKassa's confirmation page (`url`), or back to the invoice's
    page (no url); `outcome` is the ledger's word when a payment was found already made."""

    url: str | None = None
    outcome: Outcome | None = None

    @property
    def already_paid(self) -> bool:
        """Another payment has the invoice: nothing was (or will be) created for this press."""
        return self.outcome in (Outcome.ALREADY_PAID, Outcome.EXTRA)


async def open_checkout(api: ApiClient, request: dict[str, Any], label: str, now: datetime,
                        settle: Settle) -> Checkout:
    """The open payment of this invoice's latest attempt, created if needed; a cancelled attempt is
    replaced by the next one, a succeeded (or held) payment is settled and sends the payer back."""
    request = {**request, "save_payment_method": request.get("save_payment_method") is True
               and await _consented(label)}
    for _ in range(MAX_CREATE_ROUNDS):
        record = await _current_attempt(label, request, now)
        if record.status in (YooKassaStatus.SUCCEEDED, YooKassaStatus.WAITING_FOR_CAPTURE):
            return Checkout()
        if record.status is YooKassaStatus.CANCELED:
            continue
        if record.status is YooKassaStatus.PENDING and record.payment_id:
            payment = await _refresh(api, record.payment_id)
            if payment is None:  # YooKassa did not answer: the stored page is still the best guess
                return Checkout(record.confirmation_url)
        else:  # creating: (re)send the reserved request under its key; YooKassa answers once
            payment = await api.create_payment(record.request, record.key)
            await record_created(record.key, payment["id"], payment_status(payment), confirmation_url(payment),
                                 now, **cancellation(payment))
        status = payment_status(payment)
        if status is not YooKassaStatus.PENDING:
            _, outcome = await settle(payment)
            if status is YooKassaStatus.CANCELED:
                continue
            return Checkout(outcome=outcome)
        url = confirmation_url(payment) or record.confirmation_url
        if url is None:
            raise ProviderUnavailable(f"yookassa payment {payment['id']} is pending without a confirmation URL")
        return Checkout(url)
    raise ProviderUnavailable(f"yookassa: no payment could be opened for {label}")


async def _consented(label: str) -> bool:
    invoice = await find_invoice(label)
    consent = invoice.auto_renew_consent if invoice is not None else None
    return consent is not None and consent.provider == NAME


def _other_choice(record: YooKassaPayment, request: dict[str, Any]) -> bool:
    """An open attempt made under the other pay-once / pay-and-renew choice than this press's."""
    return record.status is YooKassaStatus.PENDING and \
        record.request.get("save_payment_method") is not request["save_payment_method"]


async def _current_attempt(label: str, request: dict[str, Any], now: datetime) -> YooKassaPayment:
    """The latest attempt, or a new one reserved after a cancelled one, one made under the other choice, or for
    the first press."""
    record = await latest_attempt(label)
    if record is None or record.status is YooKassaStatus.CANCELED or _other_choice(record, request):
        attempt = 0 if record is None else record.attempt + 1
        record = await reserve(create_key(label, attempt), label, attempt, request, now)
    return record


async def _refresh(api: ApiClient, payment_id: str) -> dict[str, Any] | None:
    try:
        return await api.get_payment(payment_id)
    except ProviderUnavailable:
        return None
