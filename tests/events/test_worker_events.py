"""`ymds worker`'s own loop runs the events queue: the payments it fulfils reach the receiver, signed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from beanie import init_beanie
from mongomock_motor import AsyncMongoMockClient

from billing.clock import utc_now
from billing.invoices import create_invoice
from billing.ledger import Ledger
from billing.money import Money
from billing.providers.base import EventKind, VerifiedEvent
from db.events import EventStatus, OutboundEvent
from db.models import DOCUMENT_MODELS
from rq_access import EVENTS_QUEUE, make_worker
from tests.conftest import make_settings
from tests.events.conftest import EVENTS_SECRET
from tests.events.receiver import EventReceiver
from tests.webhook_server.test_redis_faults import free_port
from webhook_server import runner


@pytest.fixture
def receiver_thread() -> Iterator[tuple[EventReceiver, str]]:
    """The receiver on a loop of its own thread: `run_worker` blocks the test's thread as `ymds worker` would."""
    receiver = EventReceiver(secret=EVENTS_SECRET)
    loop = asyncio.new_event_loop()
    port = free_port()
    app_runner = web.AppRunner(receiver.app())
    loop.run_until_complete(app_runner.setup())
    loop.run_until_complete(web.TCPSite(app_runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield receiver, f"http://127.0.0.1:{port}/hooks/ymds"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.run_until_complete(app_runner.cleanup())
    loop.close()


def test_the_worker_listens_on_the_events_queue(redis_conn):
    assert EVENTS_QUEUE in [queue.name for queue in make_worker(redis_conn).queues]


def test_ymds_worker_fulfils_and_delivers_the_events(monkeypatch, redis_conn, plans, receiver_thread):
    receiver, url = receiver_thread
    database = AsyncMongoMockClient(tz_aware=True)

    async def open_database(uri: str, name: str) -> Any:
        await init_beanie(database=database[name], document_models=DOCUMENT_MODELS)
        return database

    settings = make_settings(events_url=url, events_secret=EVENTS_SECRET)

    async def seed() -> str:
        await open_database("seed", settings.mongodb_db)
        invoice = await create_invoice(plans.get("month"), 77, now=utc_now(), ttl_seconds=3600)
        await Ledger(runner.queues_for(settings)).record(
            VerifiedEvent("yoomoney", "op-77", invoice.label, Money(29900, "RUB"), EventKind.PAYMENT))
        return invoice.label

    label = asyncio.run(seed())
    monkeypatch.setattr(runner, "init_db", open_database)
    runner.run_worker(settings, plans, burst=True)

    assert [(got.event["type"], got.verified, got.answered) for got in receiver.got] == [
        ("payment.succeeded", True, 200), ("subscription.activated", True, 200)]
    assert receiver.got[0].event["data"]["invoice"] == label

    async def statuses() -> list[EventStatus]:
        return [event.status for event in await OutboundEvent.find_all().to_list()]

    assert asyncio.run(statuses()) == [EventStatus.DELIVERED] * 2
