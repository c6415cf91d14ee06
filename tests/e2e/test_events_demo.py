"""`ymds demo` with EVENTS_URL set: a payment of its printed link reaches the owner's receiver, signed."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from aiohttp.test_utils import TestServer

from tests.e2e.demo_process import DEADLINE_SECONDS, YMDS, running_demo
from tests.events.conftest import EVENTS_SECRET
from tests.events.receiver import EventReceiver


async def test_the_demo_runs_the_events_queue_and_signs_each_event(tmp_path):
    receiver = EventReceiver(secret=EVENTS_SECRET)
    server = TestServer(receiver.app())
    await server.start_server()
    try:
        async with running_demo(tmp_path, EVENTS_URL=str(server.make_url("/hooks/ymds")),
                                EVENTS_SECRET=EVENTS_SECRET) as demo:
            label = urlsplit(demo.link).path.rsplit("/", 1)[1]
            simulate = await asyncio.create_subprocess_exec(
                str(YMDS), "simulate", "yoomoney", "payment", "--invoice", label, "--url", demo.base, env=demo.env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(simulate.communicate(), DEADLINE_SECONDS)
            assert simulate.returncode == 0, err.decode()
            async with asyncio.timeout(DEADLINE_SECONDS):
                while len(receiver.accepted()) < 2:
                    await asyncio.sleep(0.05)  # polling the condition, bounded by the deadline above
    finally:
        await server.close()
    assert [(got.event["type"], got.verified) for got in receiver.got] == [
        ("payment.succeeded", True), ("subscription.activated", True)]
    assert receiver.got[0].event["data"]["invoice"] == label and receiver.got[0].event["data"]["plan"] == "week"
