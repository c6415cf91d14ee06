"""The bot's fixtures: a fake Bot API on loopback, settings pointing at it, the real Dispatcher and Bot,
and the worker's notifier talking to the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiohttp.test_utils import TestClient, TestServer

from billing.plans import Catalogue
from bot.main import build_dispatcher, make_bot
from bot.notifier import TelegramNotifier
from settings import Settings
from tests.conftest import YOOMONEY_API_TOKEN, FrozenClock, make_settings
from webhook_server.emulators.telegram import FakeTelegram
from webhook_server.emulators.yoomoney import YooMoneyEmulator
from webhook_server.keys import LEDGER, QUEUES

BOT_TOKEN = "123456:ABC-test-token"
ADMIN_ID = 1001
ADMIN_CHAT_ID = -100500
USER_ID = 777


class Sleeps:
    """The notifier's injected sleep: records how long it was asked to wait, waits not at all."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
async def fake_telegram() -> AsyncIterator[tuple[FakeTelegram, str]]:
    fake = FakeTelegram(token=BOT_TOKEN)
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def fake(fake_telegram: tuple[FakeTelegram, str]) -> FakeTelegram:
    return fake_telegram[0]


def bot_settings(yoomoney_url: str, telegram_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "yoomoney_api_token": YOOMONEY_API_TOKEN, "yoomoney_api_url": yoomoney_url, "bot_token": BOT_TOKEN,
        "telegram_api_url": telegram_url, "admin_ids": [ADMIN_ID], "admin_chat_id": ADMIN_CHAT_ID,
    }
    return make_settings(**{**values, **overrides})


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str], fake_telegram: tuple[FakeTelegram, str]) -> Settings:
    return bot_settings(yoomoney_emulator[1], fake_telegram[1])


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[Bot]:
    bot = make_bot(settings)
    yield bot
    await bot.session.close()


@pytest.fixture
def dispatcher(client: TestClient, settings: Settings, plans: Catalogue, clock: FrozenClock) -> Dispatcher:
    """The real Dispatcher; `client` has opened the database and the queue its handlers use."""
    return build_dispatcher(settings, plans, clock=clock, ledger=client.app[LEDGER], renewal_queue=client.app[QUEUES])


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def notifier(settings: Settings, clock: FrozenClock, sleeps: Sleeps) -> AsyncIterator[TelegramNotifier]:
    """Overrides the recording notifier: the worker's notices go to the fake Bot API."""
    notifier = TelegramNotifier(make_bot(settings), admin_chat_id=settings.admin_chat_id, clock=clock, sleep=sleeps)
    yield notifier
    await notifier.close()


def message_update(text: str, *, user_id: int = USER_ID, language_code: str | None = "en",
                   update_id: int = 1, message_id: int = 10, chat_id: int | None = None,
                   username: str | None = None) -> dict[str, Any]:
    """A message as Telegram delivers it; a leading /command gets its bot_command entity."""
    sender: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "Ivan"}
    if language_code is not None:
        sender["language_code"] = language_code
    if username is not None:
        sender["username"] = username
    chat = {"id": chat_id or user_id, "type": "private" if chat_id is None or chat_id > 0 else "supergroup"}
    message: dict[str, Any] = {"message_id": message_id, "date": 1767225600, "chat": chat, "from": sender,
                               "text": text}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": update_id, "message": message}


async def send(dispatcher: Dispatcher, bot: Bot, text: str, **options: Any) -> Any:
    """Feed one message through the real dispatcher: middlewares, filters, handler; its API calls reach the fake."""
    return await dispatcher.feed_raw_update(bot, message_update(text, **options))


def last_text(fake: FakeTelegram, chat_id: int = USER_ID) -> str:
    messages = fake.bot_messages(chat_id)
    assert messages, f"the bot wrote nothing to chat {chat_id}"
    return str(messages[-1]["text"])


BLOCKED_TEXT = "bot was blocked by the user"
