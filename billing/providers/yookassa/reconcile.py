"""Asking YooKassa what its notifications may have failed to tell us (issue 16 part 3).

YooKassa gives up a notification 24 hours after the event; an outage, a wrong allowlist or a TLS error
across that window would lose the payment. So the sweep asks the API twice over:
1. every payment we created and still hold as open (db/yookassa.py: pending or waiting for capture) is
   fetched again (GET /payments/{id});
2. the payments list of the period (GET /payments, created_at.gte/created_at.lt, status=succeeded, paged
   by cursor) catches the ones we never learned the id of (an attempt whose create answer was lost) and
   those created elsewhere for our invoices (metadata.label names one of our invoices).
Each payment found is settled through the provider's one path for a fetched Payment (the same builder and
operation id, the payment id, as the notification path), so a late notification is a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from billing.invoices import find_invoice
from billing.providers.base import ProviderRejected
from billing.providers.yookassa.checkout import Settle
from billing.providers.yookassa.protocol import NAME, ApiClient, label_of
from billing.sweep import ReconcileReport
from db.yookassa import YooKassaStatus, open_payments, record_status

log = logging.getLogger(__name__)

NOT_AT_YOOKASSA = "not_found_at_yookassa"  # the cancel reason of a payment the API says this shop lacks


async def reconcile(api: ApiClient, settle: Settle, start: datetime, end: datetime, *,
                    now: datetime) -> ReconcileReport:
    """Settle what YooKassa knows about our open payments and our invoices' payments of [start, end)."""
    report = ReconcileReport(provider=NAME)
    seen: set[str] = set()
    for record in await open_payments():
        assert record.payment_id is not None  # open_payments selects attempts YooKassa has answered
        seen.add(record.payment_id)
        report.asked += 1
        payment = await api.get_payment(record.payment_id)
        if payment is None:
            await record_status(record.payment_id, YooKassaStatus.CANCELED, now, label=record.label,
                                reason=NOT_AT_YOOKASSA)
            report.lines.append(f"{record.payment_id} for {record.label}: this shop has no such payment; closed")
            continue
        await _judge(payment, settle, report)
    async for payment in _succeeded_between(api, start, end, report):
        if payment["id"] not in seen and await _for_our_invoice(payment):
            seen.add(payment["id"])
            await _judge(payment, settle, report)
    return report


async def _succeeded_between(api: ApiClient, start: datetime, end: datetime,
                             report: ReconcileReport) -> AsyncIterator[dict[str, Any]]:
    """Every succeeded payment created in [start, end), page by page."""
    cursor: str | None = None
    cursors: set[str] = set()
    while True:
        report.asked += 1
        items, cursor = await api.list_payments(created_from=start, created_before=end, status="succeeded",
                                                cursor=cursor)
        for item in items:
            yield item
        if cursor is None or cursor in cursors:  # a repeated cursor would page forever
            return
        cursors.add(cursor)


async def _for_our_invoice(payment: Mapping[str, Any]) -> bool:
    """Whether metadata.label names one of our invoices; a shop may serve other systems too."""
    label = label_of(payment)
    return bool(label) and await find_invoice(label) is not None


async def _judge(payment: Mapping[str, Any], settle: Settle, report: ReconcileReport) -> None:
    try:
        name, outcome = await settle(payment)
    except ProviderRejected as err:
        log.warning("yookassa payment %s not settled by the sweep: %s", payment.get("id"), err)
        report.lines.append(f"{payment.get('id')} for {label_of(payment)}: {err}")
        return
    line = f"{payment['id']} for {label_of(payment)}"
    if outcome is None:
        report.lines.append(f"{line}: {name}")
    else:
        report.add(outcome, line)
