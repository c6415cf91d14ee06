"""konsol.pro's emulator behaves as konsol.pro does, on a clock the test moves: each webhook is delivered up to five
times a second apart until one is answered 2xx, and payouts settle hours or days after they were made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from billing.providers.konsol import KonsolClient, payment_request
from tests.konsol_support import CARD, KONSOL_TOKEN, konsol_server  # noqa: F401
from webhook_server.payout_services import OwnSessionTransport


class Receiver:
    """A shop's webhook route that answers the statuses it is given, in order, then 200."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.received: list[bytes] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.read())
        return web.Response(status=self.answers.pop(0) if self.answers else 200)


@pytest.fixture
async def receiver(konsol_server) -> AsyncIterator[Receiver]:
    shop = Receiver()
    app = web.Application()
    app.router.add_post("/notify/konsol", shop.handle)
    server = TestServer(app)
    await server.start_server()
    konsol_server[0].notify_url = str(server.make_url("/notify/konsol"))
    yield shop
    await server.close()


@pytest.fixture
async def api(konsol_server) -> AsyncIterator[KonsolClient]:
    transport = OwnSessionTransport(30)
    yield KonsolClient(transport, base_url=konsol_server[1], token=KONSOL_TOKEN, timeout=30)
    await transport.close()


async def made(api: KonsolClient) -> str:
    body = payment_request(label="po_emulated", amount=100000, first_name="I", last_name="P", card_number=CARD)
    return (await api.create_payment(body)).id


async def test_a_webhook_is_delivered_again_a_second_apart_until_it_is_answered(konsol_server, receiver, api):
    emulator, _ = konsol_server
    payment_id = await made(api)
    receiver.answers = [503, 500]

    assert await emulator.settle(payment_id) == [503]
    assert await emulator.run_due() == [], "the next attempt waits a second on konsol.pro's clock"
    emulator.clock.now += timedelta(milliseconds=999)
    assert await emulator.run_due() == []
    emulator.clock.now += timedelta(milliseconds=1)
    assert await emulator.run_due() == [500]
    emulator.clock.now += timedelta(seconds=1)
    assert await emulator.run_due() == [200]
    emulator.clock.now += timedelta(minutes=5)
    assert await emulator.run_due() == [] and emulator.pending_deliveries() == 0
    assert len(receiver.received) == 3 and len(set(receiver.received)) == 1, "the same body each time"


async def test_after_five_refused_attempts_konsol_gives_up(konsol_server, receiver, api):
    emulator, _ = konsol_server
    payment_id = await made(api)
    receiver.answers = [502] * 10

    statuses = await emulator.settle(payment_id)
    for _ in range(8):
        emulator.clock.now += timedelta(seconds=1)
        statuses += await emulator.run_due()
    assert statuses == [502] * 5 and emulator.pending_deliveries() == 0


async def test_a_payout_settles_hours_later_on_konsols_clock_and_a_lookup_sees_it_then(konsol_server, receiver,
                                                                                       api):
    emulator, _ = konsol_server
    emulator.settle_after = timedelta(hours=30)
    payment_id = await made(api)

    emulator.clock.now += timedelta(hours=29, minutes=59)
    assert await emulator.run_due() == [] and (await api.get_payment(payment_id)).status == "created"
    emulator.clock.now += timedelta(minutes=1)
    assert (await api.get_payment(payment_id)).status == "executed", "a lookup sees what konsol.pro shows now"
    assert await emulator.run_due() == [200] and len(receiver.received) == 1


async def test_a_scheduled_series_of_statuses_plays_out_in_order(konsol_server, receiver, api):
    emulator, _ = konsol_server
    payment_id = await made(api)
    emulator.schedule(payment_id, "nalog_unbound", timedelta(hours=2))
    emulator.schedule(payment_id, "executed", timedelta(days=3))

    emulator.clock.now += timedelta(hours=2)
    assert await emulator.run_due() == [200] and emulator.payments[payment_id]["status"] == "nalog_unbound"
    emulator.clock.now += timedelta(days=3)
    assert await emulator.run_due() == [200] and emulator.payments[payment_id]["status"] == "executed"
    assert b'"nalog_unbound"' in receiver.received[0] and b'"executed"' in receiver.received[1]


async def test_a_card_ending_0004_fails_when_it_settles(konsol_server, receiver, api):
    emulator, _ = konsol_server
    emulator.settle_after = timedelta(days=1)
    body = payment_request(label="po_x", amount=5000, first_name="I", last_name="P", card_number="2200000000000004")
    payment_id = (await api.create_payment(body)).id
    emulator.clock.now += timedelta(days=1)
    assert await emulator.run_due() == [200]
    assert emulator.payments[payment_id]["status"] == "failed"
