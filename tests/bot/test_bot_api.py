"""bot/bot_api.py: Telegram's answers sorted as aiogram sorts them (retry_after first, then the status), and an
answer that is not the Bot API's treated as no answer; the token never in an error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.bot_api import (
    BotApi,
    BotApiBadRequest,
    BotApiError,
    BotApiForbidden,
    BotApiRetryAfter,
    BotApiServerError,
    BotApiUnreachable,
)
from tests.bot.conftest import BOT_TOKEN
from webhook_server.payout_services import OwnSessionTransport


class Answers:
    """A Bot API stand-in that gives the next canned (status, body) and keeps each request's form."""

    def __init__(self) -> None:
        self.next: tuple[int, Any] = (200, {"ok": True, "result": True})
        self.forms: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.forms.append(dict(await request.post()))  # type: ignore[arg-type]
        status, body = self.next
        if isinstance(body, str):
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)


@pytest.fixture
async def telegram() -> AsyncIterator[tuple[Answers, BotApi]]:
    answers = Answers()
    app = web.Application()
    app.router.add_post(f"/bot{BOT_TOKEN}/{{method}}", answers.handle)
    server = TestServer(app)
    await server.start_server()
    transport = OwnSessionTransport(5)
    yield answers, BotApi(transport, BOT_TOKEN, str(server.make_url("/")))
    await transport.close()
    await server.close()


async def test_a_message_with_buttons_is_sent_as_aiogram_sends_it(telegram):
    answers, api = telegram
    keyboard = {"inline_keyboard": [[{"text": "Подтвердить", "callback_data": "hold:inv_1"}]]}
    await api.send_message(-100500, "Оплачено", keyboard)
    [form] = answers.forms
    assert form["chat_id"] == "-100500" and form["text"] == "Оплачено"
    assert json.loads(form["reply_markup"]) == keyboard


@pytest.mark.parametrize(("status", "body", "error"), [
    (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
           "parameters": {"retry_after": 7}}, BotApiRetryAfter),
    (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, BotApiBadRequest),
    (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
     BotApiForbidden),
    (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, BotApiServerError),
    (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, BotApiError),
    (400, {"ok": False, "error_code": 400, "description": "Bad Request: group chat was upgraded to a supergroup chat",
           "parameters": {"migrate_to_chat_id": -1001}}, BotApiError),
    (502, "<html>Bad Gateway</html>", BotApiUnreachable),
    (200, {"result": True}, BotApiUnreachable),
], ids=["429", "400", "403", "5xx", "401", "migrated", "not-json", "no-ok"])
async def test_each_answer_becomes_the_outcome_aiogram_gave(telegram, status, body, error):
    answers, api = telegram
    answers.next = (status, body)
    with pytest.raises(error) as raised:
        await api.send_message(1, "x")
    assert type(raised.value) is error, "not a subclass standing in for another outcome"
    assert BOT_TOKEN not in str(raised.value) and "sendMessage" in str(raised.value)
    if error is BotApiRetryAfter:
        assert raised.value.retry_after == 7


async def test_no_server_is_unreachable_without_the_token():
    transport = OwnSessionTransport(5)
    try:
        with pytest.raises(BotApiUnreachable) as raised:
            await BotApi(transport, BOT_TOKEN, "http://127.0.0.1:9").call("getMe", {})
    finally:
        await transport.close()
    assert BOT_TOKEN not in str(raised.value)
