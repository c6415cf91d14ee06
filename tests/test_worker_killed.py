"""A worker process killed with SIGKILL in the middle of a job: RQ's abandoned job runs again, applied once."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import timedelta

from aiohttp.test_utils import TestClient, TestServer
from rq.registry import StartedJobRegistry

from db import OperationStatus, Subscription
from tests.conftest import REDIS_TEST_URL, ROOT, make_settings
from tests.helpers import new_invoice, notification, operations, post_notification
from tests.webhook_server.test_redis_faults import drain
from webhook_server.app import create_app
from webhook_server.keys import QUEUES

DEADLINE_SECONDS = 30
A_DAY_LATER = 24 * 3600  # long past any job's timeout and heartbeat


async def test_a_job_abandoned_by_a_killed_worker_is_retried_and_applied_once(plans, clock, redis_conn):
    app = create_app(make_settings(job_max_retries=2, job_retry_intervals=[0]), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as client:
        invoice = await new_invoice(client, user_id=91)
        assert await post_notification(client, notification(invoice["label"], operation_id="k1")) == 200

        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.killable_worker", REDIS_TEST_URL, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), DEADLINE_SECONDS)
        assert line.strip() == b"in job"
        worker.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(worker.wait(), DEADLINE_SECONDS) == -signal.SIGKILL

        queues = client.app[QUEUES]
        started = StartedJobRegistry(queue=queues.fulfilment)
        assert len(started) == 1, "the killed worker left its job marked started"
        started.cleanup(timestamp=time.time() + A_DAY_LATER)  # what any live worker's maintenance does later
        assert len(started) == 0
        await drain(client, plans, clock)

        subscription = await Subscription.find_one(Subscription.user_id == 91)
        assert subscription is not None
        assert subscription.current_period_end == clock.now + timedelta(days=30)
        [operation] = await operations()
        assert operation.status is OperationStatus.APPLIED
