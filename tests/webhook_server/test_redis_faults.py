"""Redis-side faults against a real Redis server that the test owns: stopped, unreachable, connections dropped."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from db import OperationStatus, Subscription
from tests.conftest import make_settings
from tests.helpers import new_invoice, notification, operations, post_notification
from webhook_server.app import create_app
from webhook_server.keys import LEDGER, QUEUES
from webhook_server.runner import InProcessWorker
from webhook_server.sweeper import STRANDED_AFTER

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
START_DEADLINE_SECONDS = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OwnRedis:
    """A redis-server process of the test's own, so stopping it disturbs nothing else."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
        probe.close()

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=START_DEADLINE_SECONDS)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.stop()


@pytest.fixture
async def faulty_client(own_redis: OwnRedis, plans, clock) -> AsyncIterator[TestClient]:
    app = create_app(make_settings(redis_url=own_redis.url), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as client:
        yield client


async def drain(client: TestClient, plans, clock) -> None:
    import asyncio

    from billing import runtime

    worker = InProcessWorker(client.app[QUEUES], asyncio.get_running_loop(), plans, clock=clock)
    try:
        await worker.drain()
    finally:
        runtime.uninstall()


async def test_redis_stopped_during_a_notification_asks_for_retry_and_loses_nothing(
    faulty_client, own_redis, plans, clock
):
    invoice = await new_invoice(faulty_client, user_id=31)
    fields = notification(invoice["label"])

    own_redis.stop()
    assert await post_notification(faulty_client, fields) == 500
    [recorded] = await operations()
    assert recorded.status is OperationStatus.RECORDED, "the verified event is kept even though it was not queued"

    own_redis.start()
    assert await post_notification(faulty_client, fields) == 200
    await drain(faulty_client, plans, clock)

    subscription = await Subscription.find_one(Subscription.user_id == 31)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    [applied] = await operations()
    assert applied.status is OperationStatus.APPLIED


async def test_unreachable_redis_fails_readiness_and_notifications(plans, clock, redis_conn):
    app = create_app(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as client:
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["checks"]["redis"].startswith("error")
        invoice = await new_invoice(client)
        assert await post_notification(client, notification(invoice["label"])) == 500


async def test_dropped_connections_are_reopened(faulty_client, own_redis, plans, clock):
    invoice = await new_invoice(faulty_client, user_id=32)
    killer = redis.Redis(port=own_redis.port)
    killer.client_kill_filter(_type="normal", skipme=True)
    killer.close()

    fields = notification(invoice["label"])
    statuses = [await post_notification(faulty_client, fields) for _ in range(2)]
    assert statuses[-1] == 200 and set(statuses) <= {200, 500}
    await drain(faulty_client, plans, clock)
    subscription = await Subscription.find_one(Subscription.user_id == 32)
    assert subscription.current_period_end == clock.now + timedelta(days=30)


async def test_redis_restarted_during_a_stream_every_notification_is_fulfilled_once(
    faulty_client, own_redis, plans, clock
):
    """A provider keeps sending while Redis goes away and comes back; what was refused it delivers again."""
    invoices = [await new_invoice(faulty_client, user_id=400 + n) for n in range(12)]
    stream = [notification(invoice["label"], operation_id=f"s{n}") for n, invoice in enumerate(invoices)]
    answers = {}
    for n, fields in enumerate(stream):
        if n == 4:
            own_redis.stop()
        if n == 8:
            own_redis.start()
        answers[n] = await post_notification(faulty_client, fields)
    refused = [n for n, status in answers.items() if status != 200]
    assert refused == [4, 5, 6, 7] and {answers[n] for n in refused} == {500}

    for n in refused:  # the provider's retries
        assert await post_notification(faulty_client, stream[n]) == 200
    await drain(faulty_client, plans, clock)
    # The restarted Redis kept nothing (no persistence): the jobs of s0..s3, acknowledged before the stop,
    # are gone. The ledger still holds them; the web process's sweeper sends them round again.
    clock.now += STRANDED_AFTER
    assert await faulty_client.app[LEDGER].requeue_stranded(STRANDED_AFTER) == 4
    await drain(faulty_client, plans, clock)

    for n in range(12):
        subscription = await Subscription.find_one(Subscription.user_id == 400 + n)
        applied_at = clock.now if n < 4 else clock.now - STRANDED_AFTER  # s0..s3 ran after the sweep
        assert subscription.current_period_end == applied_at + timedelta(days=30)
        assert len(subscription.applied_operations) == 1
    assert {op.status for op in await operations()} == {OperationStatus.APPLIED}
