"""Refunding a Payme Subscribe receipt (a saved-card charge): `receipts.cancel`, then `receipts.get` until it ends.

Payme moves a paid receipt to state 21 ("queued for cancellation") and later to 50 ("cancelled", the
money back with the payer); reference §4 and §6. State 21 is a pending refund, tracked and looked up
(billing/refunds.py) until it ends; the payment is reversed only at 50. A receipt found paid again (4)
after we asked to cancel it means the cancellation did not go through: the refund counts as canceled
and the admin chat is told (Payme publishes no state for a failed cancellation; this is our reading,
and every other state keeps the refund pending, so nothing is reversed on a guess). A payment that is
no receipt of ours (−31602: a checkout payment through the Merchant API) is refunded in Payme's
merchant cabinet, which then sends CancelTransaction.
"""

from __future__ import annotations

import logging

from billing.clock import utc_now
from billing.money import Money
from billing.providers.base import ProviderRejected, RefundUnsupported
from billing.providers.payme.protocol import NAME
from billing.providers.payme.subscribe import (
    RECEIPT_CANCEL_QUEUED,
    RECEIPT_CANCELLED,
    RECEIPT_PAID,
    PaymeSubscribeError,
    Receipt,
    SubscribeClient,
)
from billing.refunds import RefundResult, RefundStatus, pending_refund, track

log = logging.getLogger(__name__)

RECEIPT_NOT_FOUND = -31602
KEPT_PAID = "Payme kept the receipt paid (state 4) after receipts.cancel"


def receipt_refund(receipt: Receipt) -> RefundResult:
    """What a receipt's state says of our request to cancel it."""
    if receipt.state == RECEIPT_CANCELLED:
        return RefundResult(RefundStatus.SUCCEEDED, receipt.receipt_id)
    if receipt.state == RECEIPT_PAID:
        return RefundResult(RefundStatus.CANCELED, receipt.receipt_id, "payme", KEPT_PAID)
    if receipt.state != RECEIPT_CANCEL_QUEUED:
        log.info("payme receipt %s is in state %s after receipts.cancel; still pending", receipt.receipt_id,
                 receipt.state)
    return RefundResult(RefundStatus.PENDING, receipt.receipt_id)


async def cancel_receipt(client: SubscribeClient, *, operation_id: str, amount: Money, label: str) -> RefundResult:
    """receipts.cancel of a paid receipt: succeeded (50) or pending (21, tracked). A cancellation still under
    way is answered without asking again; asking again is harmless too (Payme answers the same receipt)."""
    open_one = await pending_refund(NAME, operation_id)
    if open_one is not None:
        return RefundResult(RefundStatus.PENDING, open_one.refund_id)
    try:
        receipt = await client.receipts_cancel(operation_id)
    except PaymeSubscribeError as err:
        if err.code == RECEIPT_NOT_FOUND:
            raise RefundUnsupported("this Payme payment is not a Subscribe receipt: refund it in the Payme "
                                    "merchant cabinet (Payme then sends CancelTransaction)") from err
        raise ProviderRejected(f"payme receipts.cancel: {err.code} {err.message}") from err
    result = receipt_refund(receipt)
    log.info("payme receipt %s of %s: cancellation %s (state %s)", receipt.receipt_id, label, result.status.value,
             receipt.state)
    if result.status is RefundStatus.CANCELED:
        raise ProviderRejected(KEPT_PAID)
    if result.status is RefundStatus.PENDING:
        await track(NAME, result, operation_id=operation_id, label=label, amount=amount, now=utc_now())
    return result


async def receipt_status(client: SubscribeClient, receipt_id: str) -> RefundResult:
    try:
        return receipt_refund(await client.receipts_get(receipt_id))
    except PaymeSubscribeError as err:
        raise ProviderRejected(f"payme receipts.get {receipt_id}: {err.code} {err.message}") from err
