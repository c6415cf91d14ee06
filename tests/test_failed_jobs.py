"""Jobs that fail for good: the admin chat is told, `ymds jobs` lists them, `ymds jobs requeue` finishes them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from db import Invoice, InvoiceStatus
from rq_access import failed_jobs, job_id, requeue_failed
from tests.billing.test_fulfilment import crash_at
from tests.conftest import REDIS_TEST_URL
from tests.helpers import new_invoice, notification, post_notification

YMDS = Path(sys.executable).with_name("ymds")


async def failed_fulfilment(client, worker) -> str:
    invoice = await new_invoice(client, user_id=71)
    await post_notification(client, notification(invoice["label"], operation_id="7001"))
    worker.runtime.checkpoint = crash_at("after_ledger_insert")
    await worker.drain()
    worker.runtime.checkpoint = lambda step: None
    return invoice["label"]


async def test_a_fulfilment_that_fails_for_good_alerts_the_admin_chat_once(client, worker, notifier):
    await failed_fulfilment(client, worker)
    await worker.drain()
    [alert] = notifier.failures
    assert alert.job_id == job_id("fulfil", "yoomoney", "7001")
    assert "fulfil_payment(yoomoney, 7001" in alert.description
    assert alert.error == "Crash: after_ledger_insert"


async def test_a_job_requeued_by_hand_that_fails_again_alerts_again(client, worker, queues, notifier):
    await failed_fulfilment(client, worker)
    await worker.drain()
    worker.runtime.checkpoint = crash_at("after_ledger_insert")
    requeue_failed(queues.connection)
    await worker.drain()
    assert [alert.job_id for alert in notifier.failures] == [job_id("fulfil", "yoomoney", "7001")] * 2


async def test_failed_jobs_are_listed_and_requeued_to_completion(client, worker, queues):
    label = await failed_fulfilment(client, worker)
    [failed] = failed_jobs(queues.connection)
    assert failed.id == job_id("fulfil", "yoomoney", "7001") and failed.queue == "ymds-fulfilment"
    assert failed.error == "tests.billing.test_fulfilment.Crash: after_ledger_insert"

    assert requeue_failed(queues.connection, ["nope"]) == []
    assert requeue_failed(queues.connection) == [failed.id]
    await worker.drain()
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.PAID
    assert failed_jobs(queues.connection) == []


async def ymds(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`ymds ARGS` in its own process on the test Redis, waited for off the event loop."""
    env = {"PATH": "", "REDIS_URL": REDIS_TEST_URL, "HOME": str(cwd)}
    return await asyncio.to_thread(subprocess.run, [str(YMDS), *args], capture_output=True, text=True, env=env,
                                   cwd=cwd, timeout=60)


async def test_ymds_jobs_command_lists_and_requeues(client, worker, queues, tmp_path):
    await failed_fulfilment(client, worker)
    listing = await ymds("jobs", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert job_id("fulfil", "yoomoney", "7001") in listing.stdout and "1 failed job(s)" in listing.stdout

    refused = await ymds("jobs", "requeue", cwd=tmp_path)
    assert refused.returncode == 2
    requeued = await ymds("jobs", "requeue", "--all", cwd=tmp_path)
    assert requeued.returncode == 0 and "requeued fulfil-yoomoney-" in requeued.stdout
    assert queues.depth() == 1
