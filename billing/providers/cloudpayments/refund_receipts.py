"""The receipt of a CloudPayments refund (54-FZ "IncomeReturn"): issued through POST /kkt/receipt once the money
went back, since /payments/refund itself issues no receipt.

The refund path is not a job (the admin API, or settle_extra's job, calls the provider), so the receipt is its
own idempotent step: `prepare` builds the body before the refund is asked (no contact or no INN: nothing is
refunded, ReceiptContactMissing or RussianReceiptDataMissing); after the refund, `issue` records the row once
(db/cloudpayments_receipts.py, unique on the refund's key) and sends it under an X-Request-ID derived from the
key. An unknown outcome (5xx, timeout) leaves the row pending; `send_pending`, run by the scheduler's
reconciliation of CloudPayments, tries it again under the same X-Request-ID (CloudPayments answers a repeat
from its store for an hour; the reconciliation runs every few minutes). A refusal is final and kept.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from billing.clock import utc_now
from billing.errors import ProviderUnavailable
from billing.fiscal_ru import RussianReceipt, RussianReceiptDataMissing
from billing.money import Money
from billing.providers.base import ProviderRejected
from billing.providers.cloudpayments.api import ApiClient
from billing.providers.cloudpayments.receipts import INCOME_RETURN, customer_receipt, decimals_as_text
from db.cloudpayments_receipts import CloudPaymentsRefundReceipt, RefundReceiptState

log = logging.getLogger(__name__)

BATCH = 50


def request_id(key: str) -> str:
    return "ymds-kkt-" + hashlib.sha256(key.encode()).hexdigest()[:32]


class RefundReceipts:
    def __init__(self, client: ApiClient, seller_inn: str | None) -> None:
        self._client = client
        self._inn = seller_inn

    def prepare(self, receipt: RussianReceipt, *, label: str, account_id: str) -> dict[str, Any]:
        """The /kkt/receipt body of a refund's receipt; raises before anything is refunded when it cannot be made."""
        if not self._inn:
            raise RussianReceiptDataMissing("a refund's receipt needs the kassa's INN (CLOUDPAYMENTS_INN)")
        return {"Inn": self._inn, "Type": INCOME_RETURN,
                "CustomerReceipt": decimals_as_text(customer_receipt(receipt)),
                "InvoiceId": label, "AccountId": account_id}

    async def issue(self, key: str, body: dict[str, Any], *, transaction_id: str,
                    amount: Money) -> CloudPaymentsRefundReceipt:
        """Record the refund's receipt once and send it (see the module's docstring)."""
        row = await CloudPaymentsRefundReceipt.record_once(CloudPaymentsRefundReceipt(
            key=key, label=str(body["InvoiceId"]), transaction_id=transaction_id, amount=amount.minor,
            request=body, created_at=utc_now()))
        if row.state is RefundReceiptState.PENDING:
            await self.send(row)
        return row

    async def send(self, row: CloudPaymentsRefundReceipt) -> RefundReceiptState:
        await CloudPaymentsRefundReceipt.get_motor_collection().update_one({"key": row.key}, {"$inc": {"tries": 1}})
        try:
            answer = await self._client.kkt_receipt(row.request, request_id=request_id(row.key))
        except ProviderUnavailable as err:
            log.warning("cloudpayments refund receipt %s not issued yet (%s); tried again later", row.key, err)
            return RefundReceiptState.PENDING
        except ProviderRejected as err:
            await CloudPaymentsRefundReceipt.leave_pending(row.key, RefundReceiptState.REFUSED, message=str(err)[:300])
            log.error("cloudpayments refused the refund receipt %s of %s: %s; issue it from the CloudKassir "
                      "cabinet", row.key, row.label, err)
            return RefundReceiptState.REFUSED
        model = answer.get("Model") if isinstance(answer.get("Model"), dict) else {}
        receipt_id = model.get("Id") if isinstance(model, dict) else None
        await CloudPaymentsRefundReceipt.leave_pending(row.key, RefundReceiptState.ISSUED, issued_at=utc_now(),
                                                       receipt_id=str(receipt_id) if receipt_id else None)
        log.info("cloudpayments refund receipt %s of %s issued (%s)", row.key, row.label, receipt_id)
        return RefundReceiptState.ISSUED

    async def send_pending(self) -> int:
        """Try again every receipt whose outcome is unknown; how many were issued now."""
        issued = 0
        pending = CloudPaymentsRefundReceipt.find({"state": RefundReceiptState.PENDING.value}).limit(BATCH)
        async for row in pending:
            issued += await self.send(row) is RefundReceiptState.ISSUED
        return issued
