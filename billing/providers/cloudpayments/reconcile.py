"""Reconciliation: the CloudPayments payments whose Pay never reached us, found through /payments/find.

CloudPayments has no list of a site's payments that we use; it answers /payments/find by InvoiceId with
the latest transaction for that label (reference §4). So we ask about every invoice whose widget our page
served in the window (db.cloudpayments.CloudPaymentsWidgetOpening) and that is still pending. A Completed
transaction is recorded as Pay records it (`Notifications.payment`: the same TransactionId, the same
event builder), an Authorized one as held; a late Pay is then a duplicate of the same ledger row.

A transaction CloudPayments has refunded or cancelled (its Refund or Cancel reached us) is not recorded:
there is nothing to grant, and a late Pay of it is recorded and reversed as on the notification path.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from billing.errors import ProviderUnavailable
from billing.invoices import find_invoice
from billing.providers.base import ProviderRejected
from billing.providers.cloudpayments.api import ApiClient, message
from billing.providers.cloudpayments.charges import model_fields, transaction_model
from billing.providers.cloudpayments.notifications import Notifications
from billing.providers.cloudpayments.protocol import NAME, Malformed, Status, Transaction, read_transaction
from billing.sweep import ReconcileReport
from db import InvoiceStatus
from db.cloudpayments import CloudPaymentsNotice, CloudPaymentsWidgetOpening

log = logging.getLogger(__name__)

BATCH = 500  # invoices asked about in one sweep; the oldest openings first
PAID = (Status.COMPLETED, Status.AUTHORIZED)


async def reconcile_openings(client: ApiClient, notifications: Notifications, start: datetime,
                             end: datetime) -> ReconcileReport:
    """Ask /payments/find about each pending invoice whose widget was opened in [start, end) and record
    what it names. Raises ProviderUnavailable when CloudPayments cannot be asked (network, 5xx, 4xx)."""
    report = ReconcileReport(provider=NAME)
    for label in await CloudPaymentsWidgetOpening.labels_opened(start, end, BATCH):
        invoice = await find_invoice(label)
        if invoice is None or invoice.status is not InvoiceStatus.PENDING:
            continue
        report.asked += 1
        tx = _paid_transaction(label, await _find(client, label), report)
        if tx is None:
            continue
        if await _taken_back(tx):
            report.lines.append(f"{label}: transaction {tx.transaction_id} was refunded or cancelled at "
                                "CloudPayments; nothing to record")
            continue
        outcome = await notifications.payment(tx)
        line = f"{label}: transaction {tx.transaction_id} ({tx.status}, {tx.amount})"
        if outcome is None:
            report.lines.append(f"{line}: a test payment, CLOUDPAYMENTS_TEST_MODE is off; kept for review")
        else:
            report.add(outcome, line)
    return report


async def _find(client: ApiClient, label: str) -> dict[str, Any]:
    try:
        return await client.latest_for_invoice(label)
    except ProviderRejected as err:  # wrong credentials, a refused request: asking again later may work
        raise ProviderUnavailable(f"cloudpayments /payments/find refused: {err}") from err


def _paid_transaction(label: str, body: dict[str, Any], report: ReconcileReport) -> Transaction | None:
    """The transaction an answer names when it took (or holds) the money for `label`; else None, with a
    line for anything other than "nothing paid yet"."""
    model = transaction_model(body)
    if model is None:
        return None  # Success false without a model: no transaction for this InvoiceId
    status = model.get("Status")
    if not body["Success"] or status not in PAID:
        return None  # declined, cancelled or awaiting 3-D Secure: the invoice stays payable
    try:
        tx = read_transaction(model_fields(model))
    except Malformed as err:
        report.lines.append(f"{label}: CloudPayments answered an unreadable transaction ({err}); "
                            f"{message(body)}")
        return None
    if tx.label != label:
        report.lines.append(f"{label}: CloudPayments named transaction {tx.transaction_id} of {tx.label!r}")
        return None
    return tx


async def _taken_back(tx: Transaction) -> bool:
    cancelled, refunded = await CloudPaymentsNotice.taken_back(tx.transaction_id)
    return cancelled or (refunded > 0 and refunded >= tx.amount.minor)
