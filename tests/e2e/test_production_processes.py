"""The production shape: `ymds web`, `ymds worker` ×2 and `ymds bot` as separate processes, as the systemd units
run them, sharing the real Redis and one database (bench/mongo_wire.py: mongomock behind MongoDB's wire protocol,
since no MongoDB server can be installed here). The benchmark measures this same setup (bench/deployment.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis
from rq import Queue
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from bench.deployment import (
    ADMIN,
    Deployment,
    bot_answers,
    deployment,
    invoices,
    notifications,
    subscription_active,
    until,
    was_told,
)
from rq_access import FULFILMENT_QUEUE, QUEUE_NAMES
from tests.conftest import REDIS_TEST_URL

DEADLINE_SECONDS = 30
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def running(redis_conn: redis.Redis, tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployment(REDIS_TEST_URL, workers=2, bot=True, logs=tmp_path) as started:
        yield started


async def jobs_settled(connection: redis.Redis) -> bool:
    """No job waiting, scheduled or running on any queue."""
    return all(Queue(name, connection=connection).count == 0 and StartedJobRegistry(name, connection=connection).count
               == 0 and ScheduledJobRegistry(name, connection=connection).count == 0 for name in QUEUE_NAMES)


async def subscription(session: aiohttp.ClientSession, base: str, user_id: int) -> dict:
    async with session.get(f"{base}/api/users/{user_id}/subscription", headers=ADMIN) as response:
        return {"http": response.status, **(await response.json())}


async def test_a_payment_is_fulfilled_once_by_separate_workers_whatever_the_deliveries(running: Deployment):
    """One signed notification delivered five times at once, then once more later: one payment, one period,
    one message; a forged notification for a second invoice changes nothing; the bot process answers."""
    first, second = await invoices(running.base, 2)
    genuine = notifications([first], "production")[0]
    forged = notifications([second], "forged")[0].replace(b"sha1_hash=", b"sha1_hash=0")
    async with aiohttp.ClientSession() as session:
        async def deliver(body: bytes) -> int:
            async with session.post(f"{running.base}/notify/yoomoney", data=body, headers=FORM) as answer:
                return answer.status

        assert await asyncio.gather(*(deliver(genuine) for _ in range(5))) == [200] * 5
        assert await deliver(forged) == 400

        async def fulfilled() -> bool:
            return await subscription_active(session, running, 1)

        await until(fulfilled, "the subscription was not active", DEADLINE_SECONDS)
        period_end = (await subscription(session, running.base, 1))["current_period_end"]
        assert await deliver(genuine) == 200, "a late repeat is acknowledged"

        async def told_and_settled() -> bool:
            return await was_told(session, running, 1) and await jobs_settled(running.redis)

        await until(told_and_settled, "the user was not told, or jobs still ran", DEADLINE_SECONDS)
        async with session.get(f"{running.telegram}/fake/messages", params={"chat_id": 1}) as answer:
            assert len((await answer.json())["messages"]) == 1, "the user is told once"
        async with session.get(f"{running.base}/api/invoices/{first}", headers=ADMIN) as answer:
            assert (await answer.json())["status"] == "paid"
        assert (await subscription(session, running.base, 1))["current_period_end"] == period_end, \
            "the period is extended once"
        assert (await subscription(session, running.base, 2))["http"] == 404, "the forged one paid nothing"
    finished = FinishedJobRegistry(FULFILMENT_QUEUE, connection=running.redis)
    assert finished.count == 1, "one fulfilment job ran, on one of the two workers"
    await bot_answers(running, 3)  # the bot process answers /start; raises unless all three get an answer in time
