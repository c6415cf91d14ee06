"""The fake Bot API fails as Telegram does: a webhook update not answered 2xx is delivered again (the chat's later
updates waiting behind it) until Telegram gives up; a callback query takes one answer; answerCallbackQuery fails
on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from webhook_server.emulators.telegram import QUERY_TOO_OLD, FakeTelegram
from webhook_server.emulators.telegram.webhook import MAX_ATTEMPTS

TOKEN = "123456:ABC"
ALICE, BOB = 777, 778


class Webhook:
    """Our side as the fake sees it: answers each update with the next scripted status (then 200)."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.received: list[tuple[int, str | None]] = []  # (update_id, secret header)

    async def handle(self, request: web.Request) -> web.Response:
        update = await request.json()
        self.received.append((update["update_id"], request.headers.get("X-Telegram-Bot-Api-Secret-Token")))
        return web.Response(status=self.script.pop(0) if self.script else 200)

    def ids(self) -> list[int]:
        return [update_id for update_id, _ in self.received]


@pytest.fixture
async def hook() -> AsyncIterator[tuple[Webhook, str]]:
    target = Webhook()
    app = web.Application()
    app.router.add_post("/telegram/webhook", target.handle)
    server = TestServer(app)
    await server.start_server()
    yield target, str(server.make_url("/telegram/webhook"))
    await server.close()


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeTelegram, str]]:
    fake = FakeTelegram(token=TOKEN)
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url(f"/bot{TOKEN}"))
    await server.close()


async def call(base: str, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(f"{base}/{method}", data=params) as response:
        return response.status, await response.json()


async def test_an_update_not_answered_2xx_is_delivered_again_and_its_chat_waits_behind_it(api, hook):
    fake, base = api
    target, url = hook
    assert (await call(base, "setWebhook", url=url, secret_token="s3cret"))[1]["result"] is True
    target.script = [500, 503]
    first = await fake.user_sends(ALICE, "/start")
    later = await fake.user_sends(ALICE, "/status")
    other = await fake.user_sends(BOB, "/start")
    assert target.ids() == [first["update_id"], first["update_id"], other["update_id"]], (
        "Alice's next update retried the stuck one first and waits; Bob's chat goes on")
    _, info = await call(base, "getWebhookInfo")
    assert info["result"]["pending_update_count"] == 2
    assert info["result"]["last_error_message"] == "Wrong response from the webhook: 503"

    assert await fake.redeliver() == 0
    assert target.ids()[3:] == [first["update_id"], later["update_id"]], "then in Telegram's order"
    assert {secret for _, secret in target.received} == {"s3cret"}
    assert (await call(base, "getWebhookInfo"))[1]["result"]["pending_update_count"] == 0


async def test_telegram_gives_an_update_up_after_its_attempts_and_the_chat_goes_on(api, hook):
    fake, base = api
    target, url = hook
    await call(base, "setWebhook", url=url)
    target.script = [500] * MAX_ATTEMPTS
    stuck = await fake.user_sends(ALICE, "/start")
    while fake.outbox.pending and len(target.received) < MAX_ATTEMPTS:
        await fake.redeliver()
    assert target.ids() == [stuck["update_id"]] * MAX_ATTEMPTS
    assert fake.outbox.given_up == [stuck] and fake.outbox.pending == 0
    after = await fake.user_sends(ALICE, "/status")
    assert target.ids()[-1] == after["update_id"]


async def test_an_unreachable_webhook_keeps_the_update_and_delete_webhook_hands_it_to_get_updates(api):
    fake, base = api
    server = TestServer(web.Application())
    await server.start_server()
    url = str(server.make_url("/telegram/webhook"))
    await server.close()  # nothing listens there any more
    await call(base, "setWebhook", url=url)
    update = await fake.user_sends(ALICE, "/start")
    _, info = await call(base, "getWebhookInfo")
    assert info["result"]["pending_update_count"] == 1
    assert info["result"]["last_error_message"].startswith("Connection failed")

    await call(base, "deleteWebhook")
    _, polled = await call(base, "getUpdates", timeout=0)
    assert [u["update_id"] for u in polled["result"]] == [update["update_id"]]


async def test_a_callback_query_takes_one_answer_and_answers_fail_on_demand(api):
    fake, base = api
    await call(base, "sendMessage", chat_id=ALICE, text="Choose")
    message_id = fake.bot_messages(ALICE)[-1]["message_id"]
    query = (await fake.user_presses(ALICE, message_id, "plan:buy:month"))["callback_query"]
    assert (await call(base, "answerCallbackQuery", callback_query_id=query["id"]))[0] == 200
    status, again = await call(base, "answerCallbackQuery", callback_query_id=query["id"])
    assert (status, again["description"]) == (400, QUERY_TOO_OLD)

    fake.fail_callback_answers()
    fresh = (await fake.user_presses(ALICE, message_id, "plan:buy:month"))["callback_query"]
    assert (await call(base, "answerCallbackQuery", callback_query_id=fresh["id"]))[0] == 400
    assert (await call(base, "answerCallbackQuery", callback_query_id=fresh["id"]))[0] == 200, "only once"
    assert (await call(base, "answerCallbackQuery", callback_query_id=""))[0] == 400
