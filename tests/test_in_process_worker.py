"""The demo's in-process worker: it works continuously, runs retries once their delay has passed, and stops."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from billing import jobs, runtime
from db import Invoice, InvoiceStatus
from rq_access import job_id
from tests.helpers import new_invoice, notification, post_notification
from webhook_server.runner import InProcessWorker

DEADLINE_SECONDS = 20


async def test_a_job_scheduled_for_later_runs_once_its_time_has_come(client, queues, plans, clock):
    invoice = await new_invoice(client, user_id=95)
    await post_notification(client, notification(invoice["label"], operation_id="due-1"))
    queued = queues.fulfilment.fetch_job(job_id("fulfil", "yoomoney", "due-1"))
    queued.delete()  # replace the queued job with one scheduled in the past, as a retry waiting its delay is
    queues.fulfilment.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), jobs.fulfil_payment, "yoomoney", "due-1",
                                 invoice["label"])
    assert len(queues.fulfilment) == 0

    worker = InProcessWorker(queues, asyncio.get_running_loop(), plans, clock=clock)
    worker.start()
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            while (await Invoice.find_one(Invoice.label == invoice["label"])).status is not InvoiceStatus.PAID:
                await asyncio.sleep(0.05)  # polling the condition, bounded by the deadline
    finally:
        await worker.stop()
        runtime.uninstall()
