"""The admin chat hears of an event given up on, once, through the Telegram notifier and the fake Bot API; and a
receiver slower than EVENTS_TIMEOUT_SECONDS counts as a failed attempt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from billing.renewals.scheduler import tick
from bot.notifier import TelegramNotifier
from db.events import EventStatus, OutboundEvent
from settings import Settings
from tests.bot.conftest import ADMIN_CHAT_ID, BOT_TOKEN, Sleeps, fake_telegram, telegram_notifier
from tests.conftest import YOOMONEY_API_TOKEN, FrozenClock, make_settings
from tests.events.conftest import EVENTS_SECRET, RETRIES
from tests.helpers import new_invoice, notification, post_notification
from webhook_server.emulators.telegram import FakeTelegram

__all__ = ["fake_telegram"]  # a fixture, imported for pytest
TIMEOUT = 0.3


@pytest.fixture
async def hanging_receiver() -> AsyncIterator[tuple[asyncio.Event, str]]:
    """A receiver that takes the request and answers only when the test lets it (never, here)."""
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await request.read()
        await release.wait()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hooks/ymds", hang)
    server = TestServer(app)
    await server.start_server()
    yield release, str(server.make_url("/hooks/ymds"))
    release.set()
    await server.close()


@pytest.fixture
def settings(yoomoney_emulator: tuple[Any, str], fake_telegram: tuple[FakeTelegram, str],
             hanging_receiver: tuple[asyncio.Event, str]) -> Settings:
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
                         bot_token=BOT_TOKEN, telegram_api_url=fake_telegram[1], admin_chat_id=ADMIN_CHAT_ID,
                         events_url=hanging_receiver[1], events_secret=EVENTS_SECRET, events_retry_intervals=RETRIES,
                         events_timeout_seconds=TIMEOUT)


@pytest.fixture
async def notifier(settings: Settings, clock: FrozenClock) -> AsyncIterator[TelegramNotifier]:
    async with telegram_notifier(settings, admin_chat_id=ADMIN_CHAT_ID, clock=clock, sleep=Sleeps()) as notifier:
        yield notifier


async def test_a_receiver_that_never_answers_in_time_is_given_up_and_the_admin_chat_told_once(
        client, worker, clock, fake_telegram):
    fake, _ = fake_telegram
    invoice = await new_invoice(client, user_id=530)
    assert await post_notification(client, notification(invoice["label"])) == 200
    await worker.drain()
    for _ in range(len(RETRIES) + 1):  # one tick more than the schedule has: it must send nothing more
        due = [e.next_attempt_at for e in await OutboundEvent.find_all().to_list() if e.next_attempt_at]
        clock.now = min(due, default=clock.now)
        await tick(clock.now, worker.runtime.renewals)
        await worker.drain()

    events = await OutboundEvent.find_all().to_list()
    assert {event.status for event in events} == {EventStatus.GAVE_UP}
    for event in events:
        assert len(event.attempts) == 1 + len(RETRIES)
        assert all(a.status is None and a.error.startswith("no answer from http://127.0.0.1:")
                   and a.error.endswith(f" within {TIMEOUT:g} s") for a in event.attempts)
    told = [m["text"] for m in fake.bot_messages(ADMIN_CHAT_ID) if "not delivered to EVENTS_URL" in m["text"]]
    assert sorted(told) == sorted(
        f"⚠️ Event {e.event_id} ({e.type}) was not delivered to EVENTS_URL after 4 attempts: {e.attempts[-1].error}\n"
        f"Send it again: ymds events replay --event {e.event_id}" for e in events)
