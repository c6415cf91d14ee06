"""bot/owner.py when open-ymds does not answer (no worker on the Redis): the gate stays shut, and /subscribe
says to try again instead of failing silently."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Dispatcher, Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.owner import ActiveSubscription, subscription_router
from tests.bot.conftest import last_text, message_update
from tests.conftest import REDIS_TEST_URL
from ymds_client import YmdsClient


@pytest.fixture
async def owner_dispatcher(redis_conn) -> AsyncIterator[Dispatcher]:
    client = YmdsClient(REDIS_TEST_URL)
    gated = Router(name="gated")

    @gated.message(Command("secret"), ActiveSubscription(client, timeout=1))
    async def secret(message: Message) -> None:
        await message.answer("secret")

    @gated.message(Command("secret"))
    async def refused(message: Message) -> None:
        await message.answer("refused")

    dispatcher = Dispatcher()
    dispatcher.include_routers(subscription_router(client, timeout=1), gated)
    yield dispatcher
    client.close()


async def test_the_gate_stays_shut_when_nobody_answers(owner_dispatcher, bot, fake):
    await owner_dispatcher.feed_raw_update(bot, message_update("/secret"))
    assert last_text(fake) == "refused"


async def test_subscribe_asks_to_try_again_when_nobody_answers(owner_dispatcher, bot, fake):
    await owner_dispatcher.feed_raw_update(bot, message_update("/subscribe", language_code="ru"))
    assert last_text(fake) == "У нас что-то пошло не так. Пожалуйста, попробуйте через минуту."
