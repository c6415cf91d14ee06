"""The fake Bot API speaks Telegram's protocol: aiogram's form bodies, JSON and query strings, Telegram's
error answers by HTTP status, getUpdates' offset and long poll, webhook delivery."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.main import make_bot
from tests.bot.conftest import BLOCKED_TEXT, BOT_TOKEN, USER_ID


async def test_aiogram_form_body_is_recorded_with_its_keyboard_decoded(fake, bot):
    markup = InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text="Pay", url="http://127.0.0.1:8080/pay/inv_abc?exp=1&sig=00")],
        [InlineKeyboardButton(text="Cancel", callback_data="plan:cancel")],
    ])
    sent = await bot.send_message(USER_ID, "Choose a plan", reply_markup=markup)

    assert sent.chat.id == USER_ID and sent.text == "Choose a plan" and sent.from_user.is_bot
    [params] = fake.sent("sendMessage")
    assert params["chat_id"] == str(USER_ID)
    assert params["reply_markup"]["inline_keyboard"][0][0]["url"].startswith("http://127.0.0.1:8080/pay/")
    assert params["reply_markup"]["inline_keyboard"][1][0] == {"text": "Cancel", "callback_data": "plan:cancel"}


async def test_get_me_names_the_bot_by_the_id_in_its_token(bot):
    me = await bot.get_me()
    assert me.id == int(BOT_TOKEN.split(":")[0]) and me.is_bot and me.username == "ymds_test_bot"


async def test_json_and_query_string_calls_are_accepted_and_method_names_are_case_insensitive(fake_telegram):
    fake, url = fake_telegram
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/bot{BOT_TOKEN}/SENDMESSAGE", json={"chat_id": 5, "text": "json"}) as response:
            assert (await response.json())["result"]["text"] == "json"
        async with session.get(f"{url}/bot{BOT_TOKEN}/sendMessage", params={"chat_id": "5", "text": "q"}) as response:
            assert (await response.json())["ok"] is True
    assert [params["text"] for params in fake.sent(chat_id=5)] == ["json", "q"]


async def test_unknown_method_is_404(bot):
    class Nonsense(TelegramMethod[bool]):
        __returning__ = bool
        __api_method__ = "doesNotExist"

    with pytest.raises(TelegramNotFound):
        await bot(Nonsense())


async def test_another_token_is_unauthorized(settings):
    other = make_bot(settings.model_copy(update={"bot_token": type(settings.bot_token)("999:other")}))
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await other.get_me()
    finally:
        await other.session.close()


async def test_injected_429_carries_retry_after_and_403_is_forbidden(fake, bot):
    fake.rate_limit("sendMessage", 3)
    with pytest.raises(TelegramRetryAfter) as err:
        await bot.send_message(USER_ID, "hi")
    assert err.value.retry_after == 3

    fake.block(USER_ID)
    await bot.send_message(USER_ID + 1, "another chat is not affected")
    with pytest.raises(TelegramForbiddenError, match=BLOCKED_TEXT):
        await bot.send_message(USER_ID, "hi")
    await bot.send_message(USER_ID, "the failure was used up")


async def test_empty_text_and_oversized_callback_data_are_bad_requests(bot):
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(USER_ID, "")
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="x" * 65)]])
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(USER_ID, "hi", reply_markup=markup)


async def test_get_updates_confirms_by_offset_and_answers_early_when_an_update_arrives(fake, bot):
    first = await fake.user_sends(USER_ID, "/start")
    assert [update.update_id for update in await bot.get_updates(timeout=0)] == [first["update_id"]]
    assert len(await bot.get_updates(offset=first["update_id"] + 1, timeout=0)) == 0

    waiting = asyncio.create_task(bot.get_updates(offset=first["update_id"] + 1, timeout=30))
    await fake.wait_for(lambda: len(fake.sent("getUpdates")) == 3)
    second = await fake.user_sends(USER_ID, "/status")
    async with asyncio.timeout(5):  # well before the 30 s poll would end
        updates = await waiting
    assert [update.message.text for update in updates] == ["/status"] and updates[0].update_id == second["update_id"]


async def test_get_updates_conflicts_while_a_webhook_is_set(bot):
    assert await bot.set_webhook("https://pay.example.org/telegram/webhook", secret_token="s3cret")
    with pytest.raises(TelegramConflictError):
        await bot.get_updates(timeout=0)
    await bot.delete_webhook()
    assert await bot.get_updates(timeout=0) == []


async def test_user_messages_go_to_the_webhook_with_the_secret_header(fake):
    received = []

    async def hook(request: aiohttp.web.Request) -> aiohttp.web.Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return aiohttp.web.json_response({})

    app = aiohttp.web.Application()
    app.router.add_post("/telegram/webhook", hook)
    server = aiohttp.test_utils.TestServer(app)
    await server.start_server()
    try:
        fake.webhook = {"url": str(server.make_url("/telegram/webhook")), "secret_token": "s3cret"}
        await fake.user_sends(USER_ID, "/start", language_code="ru")
    finally:
        await server.close()
    [(secret, update)] = received
    assert secret == "s3cret" and update["message"]["text"] == "/start"
    assert update["message"]["from"]["language_code"] == "ru"
