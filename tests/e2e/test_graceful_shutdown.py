"""SIGTERM under load: in-flight notifications are answered, the worker finishes its job, nothing is lost."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from billing.money import Money
from billing.providers.yoomoney import build_notification
from rq_access import FULFILMENT_QUEUE, job_id
from tests.conftest import REDIS_TEST_URL
from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, running_demo

INVOICES = 40


async def post(session: aiohttp.ClientSession, url: str, fields: dict[str, str]) -> int | None:
    """The HTTP status, or None when the server was already gone (the provider will deliver again)."""
    try:
        async with session.post(url, data=fields) as response:
            await response.read()
            return response.status
    except aiohttp.ClientError:
        return None


async def test_sigterm_under_load_answers_in_flight_notifications_and_loses_none(tmp_path, redis_conn):
    async with running_demo(tmp_path, REDIS_URL=REDIS_TEST_URL) as demo:
        headers = {"Authorization": f"Bearer {CUSTOM['ADMIN_API_TOKEN']}"}
        async with aiohttp.ClientSession() as session:
            labels = []
            for user_id in range(1, INVOICES + 1):
                async with session.post(f"{demo.base}/api/invoices", json={"user_id": user_id, "plan": "week"},
                                        headers=headers) as response:
                    labels.append((await response.json())["label"])
            notifications = [
                build_notification(CUSTOM["YOOMONEY_NOTIFICATION_SECRET"], operation_id=f"op-{n}",
                                   paid=Money(9900, "RUB"), label=label)
                for n, label in enumerate(labels)
            ]
            sending = [asyncio.create_task(post(session, f"{demo.base}/notify/yoomoney", fields))
                       for fields in notifications]
            done, _ = await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
            demo.process.send_signal(signal.SIGTERM)
            statuses = await asyncio.gather(*sending)
        assert await asyncio.wait_for(demo.process.wait(), DEADLINE_SECONDS) == 0

    assert set(statuses) <= {200, None}, "an accepted request is answered, never cut off with a 5xx"
    assert statuses.count(200) >= 1
    connection = redis.Redis.from_url(REDIS_TEST_URL)
    for n, status in enumerate(statuses):
        if status == 200:
            # Recorded either way: fulfilled, or held when the wallet API (here the demo's own emulator, going
            # down with it) could not confirm the transfer is credited, its hold notice queued for the admins.
            ids = [job_id(kind, "yoomoney", f"op-{n}") for kind in ("fulfil", "hold-notice")]
            [job] = [Job.fetch(id_, connection=connection) for id_ in ids if Job.exists(id_, connection=connection)]
            assert job.get_status() in (JobStatus.FINISHED, JobStatus.QUEUED), "acknowledged means queued or done"
    assert StartedJobRegistry(FULFILMENT_QUEUE, connection=connection).get_job_ids() == [], \
        "the worker finished the job it had started"
    connection.close()
