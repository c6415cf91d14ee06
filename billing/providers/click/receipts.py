"""One fiscal receipt per Click payment, submitted after the payment is applied (jobs.submit_fiscal_receipt).

Click's submit_items has no idempotency key, so a row in db/click_receipts.py is ours: inserted with the
items before anything is sent, then pending → submitting → submitted | refused. The job is retried by RQ
(a 5xx or a timeout leaves the row in `submitting`); a run that finds the row in `submitting` does not know
whether the earlier POST reached Click, so it asks Click's ofd_data first: a receipt there is the earlier
submission (recorded, not sent again); none means Click never registered it, and it is sent. A refusal is
final, recorded with Click's error code and told to the admin chat once. The receipt's link (qrCodeURL) goes
to the payment's ledger row and the user (billing/receipt_links.py).
"""

from __future__ import annotations

import logging

from pymongo.errors import DuplicateKeyError

from billing.clock import Clock
from billing.fiscal import FiscalShop, invoice_item
from billing.fiscal_uz import seller_id, uzbek_item
from billing.invoices import get_invoice
from billing.ledger import find_operation
from billing.plans import Catalogue
from billing.ports import FiscalRefusalNotice, NoticeQueue, Notifier
from billing.providers.click.fiscal import receipt_link, submit_body, submit_items
from billing.providers.click.merchant import MerchantApi
from billing.providers.click.protocol import NAME
from billing.receipt_links import attach_receipt
from billing.steps import Checkpoint, no_checkpoint
from db import Operation, OperationStatus
from db.click import ClickAttempt
from db.click_receipts import ClickReceipt, ClickReceiptState

log = logging.getLogger(__name__)

STEPS = ("after_claim", "after_submit", "after_result")
UNSENT = (ClickReceiptState.PENDING, ClickReceiptState.SUBMITTING)


class ReceiptNotPossible(RuntimeError):
    """A payment the ledger holds that no Click attempt explains: there is no payment id to fiscalise."""


class ClickReceipts:
    """Submits receipts for one merchant (its Merchant API client) and shop (its seller data)."""

    def __init__(self, api: MerchantApi, shop: FiscalShop) -> None:
        self._api = api
        self._shop = shop

    async def submit(self, operation_id: str, *, plans: Catalogue, notices: NoticeQueue, notifier: Notifier,
                     clock: Clock, checkpoint: Checkpoint = no_checkpoint) -> str:
        operation = await find_operation(NAME, operation_id)
        if operation is None or operation.status is not OperationStatus.APPLIED:
            return "not applied"
        receipt = await self._receipt(operation, plans, clock)
        if receipt.state in UNSENT:
            receipt = await self._send(receipt, clock, checkpoint)
        if receipt.state is ClickReceiptState.REFUSED:
            await self._report(receipt, operation, notifier, clock)
            return "refused"
        link = receipt.qr_code_url or await receipt_link(self._api, receipt.payment_id, now=clock())
        if link is None:
            log.info("click receipt of %s submitted; Click returned no link for it", operation.key)
            return "submitted"
        if receipt.qr_code_url is None:
            await ClickReceipt.set_once(operation_id, "qr_code_url", link)
        if await attach_receipt(NAME, operation_id, link):
            notices.enqueue_receipt_notice_from_job(NAME, operation_id)
        return "submitted"

    async def _receipt(self, operation: Operation, plans: Catalogue, clock: Clock) -> ClickReceipt:
        """The payment's receipt row, inserted with its items the first time."""
        existing = await ClickReceipt.by_operation(operation.operation_id)
        if existing is not None:
            return existing
        attempt = await ClickAttempt.find_one({"operation_id": operation.operation_id})
        if attempt is None and operation.operation_id.isdigit():  # rows from before per-order ledger ids
            attempt = await ClickAttempt.find_one({"operation_id": None,
                                                   "click_trans_id": int(operation.operation_id)})
        if attempt is None:
            raise ReceiptNotPossible(f"{operation.key}: no Click attempt holds its payment id")
        invoice = await get_invoice(operation.label)
        item = uzbek_item(invoice_item(invoice, plans, self._shop))
        body = submit_body(service_id=self._api.service_id, payment_id=attempt.click_paydoc_id, item=item,
                           amount=operation.amount, seller_tin=seller_id(self._shop.seller_tin))
        receipt = ClickReceipt(operation_id=operation.operation_id, label=operation.label,
                               payment_id=attempt.click_paydoc_id, amount=operation.amount, request=body,
                               created_at=clock())
        try:
            await receipt.insert()
        except DuplicateKeyError:
            found = await ClickReceipt.by_operation(operation.operation_id)
            assert found is not None, "receipt rows are never deleted"
            return found
        return receipt

    async def _send(self, receipt: ClickReceipt, clock: Clock, checkpoint: Checkpoint) -> ClickReceipt:
        """Submit, unless an earlier run's submission reached Click; the row as it stands after."""
        key = receipt.operation_id
        if receipt.state is ClickReceiptState.SUBMITTING:
            link = await receipt_link(self._api, receipt.payment_id, now=clock())
            if link is not None:  # the earlier POST got through: record it, never send it twice
                log.info("click receipt of %s: Click has it from an earlier run; not sent again", key)
                await ClickReceipt.move(key, (ClickReceiptState.SUBMITTING,), ClickReceiptState.SUBMITTED,
                                        submitted_at=clock(), qr_code_url=link)
                return await self._reread(key)
            log.warning("click receipt of %s: an earlier submission's outcome is unknown and Click has no receipt "
                        "for payment %s; submitting it", key, receipt.payment_id)
        await ClickReceipt.move(key, UNSENT, ClickReceiptState.SUBMITTING, inc={"submissions": 1})
        checkpoint("after_claim")
        answer = await submit_items(self._api, receipt.request, now=clock())  # ProviderUnavailable: retried
        checkpoint("after_submit")
        if answer.accepted:
            await ClickReceipt.move(key, (ClickReceiptState.SUBMITTING,), ClickReceiptState.SUBMITTED,
                                    submitted_at=clock())
            log.info("click receipt of %s submitted for payment %s", key, receipt.payment_id)
        else:
            await ClickReceipt.move(key, (ClickReceiptState.SUBMITTING,), ClickReceiptState.REFUSED,
                                    refused_at=clock(), error_code=answer.error_code, error_note=answer.error_note,
                                    http_status=answer.http_status)
            log.error("click refused the receipt of %s (payment %s): HTTP %s, error_code %s %s", key,
                      receipt.payment_id, answer.http_status, answer.error_code, answer.error_note)
        checkpoint("after_result")
        return await self._reread(key)

    async def _report(self, receipt: ClickReceipt, operation: Operation, notifier: Notifier, clock: Clock) -> None:
        """Tell the admin chat of a refusal, until it has been told once."""
        if receipt.refusal_notified_at is not None:
            return
        invoice = await get_invoice(operation.label)
        note = receipt.error_note or (f"HTTP {receipt.http_status}" if receipt.http_status else "")
        await notifier.fiscal_refused(FiscalRefusalNotice(
            user_id=invoice.user_id, label=invoice.label, provider=NAME, operation_id=operation.operation_id,
            error_code=receipt.error_code, error_note=note))
        await ClickReceipt.set_once(receipt.operation_id, "refusal_notified_at", clock())

    @staticmethod
    async def _reread(operation_id: str) -> ClickReceipt:
        fresh = await ClickReceipt.by_operation(operation_id)
        assert fresh is not None, "receipt rows are never deleted"
        return fresh
