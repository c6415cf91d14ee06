"""Failures under the bot's handlers, through the real seams: aiogram against the fake Bot API over HTTP, a real
Redis of the test's own that the test stops, real RQ. An outage fails the update (webhook: 5xx, and the fake
delivers it again as Telegram does; polling: retried, then the admins are told); the user's own mistakes are
still answered politely; a refused answerCallbackQuery never undoes the handler's work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from billing import runtime
from billing.errors import UnknownPlan
from bot.main import build_dispatcher, make_bot
from bot.middlewares import RetryOutages
from db.payouts import ClaimStatus, PayoutClaim
from tests.bot.conftest import ADMIN_CHAT_ID, USER_ID, Sleeps, bot_settings, last_text
from tests.konsol_support import CARD, konsol_server, konsol_settings  # noqa: F401  (fixture)
from tests.webhook_server.test_redis_faults import OwnRedis, own_redis  # noqa: F401  (fixture)
from webhook_server.app import create_app
from webhook_server.emulators.telegram import FakeTelegram
from webhook_server.keys import LEDGER, QUEUES
from webhook_server.runner import InProcessWorker

FILED = "has been sent to the administrators"
LOST = "⚠️ The bot could not handle update"
RETRY_LATER = "Something went wrong on our side. Please try again in a minute."


@pytest.fixture
def settings(yoomoney_emulator, fake_telegram, konsol_server, own_redis):
    return bot_settings(yoomoney_emulator[1], fake_telegram[1], redis_url=own_redis.url,
                        **konsol_settings(konsol_server[1]))


@pytest.fixture
async def webhook(settings, plans, clock, fake) -> AsyncIterator[TestClient]:
    """The web app in webhook mode on the test's own Redis; the fake delivers every update to it."""
    app = create_app(settings.model_copy(update={"webhook_mode": True}), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as client:
        fake.webhook["url"] = str(client.make_url("/telegram/webhook"))
        yield client


@pytest.fixture
async def web(settings, plans, clock) -> AsyncIterator[TestClient]:
    """The web app without the bot (polling mode): the database and the queue the polling bot uses."""
    async with TestClient(TestServer(create_app(settings, plans=plans, clock=clock))) as client:
        yield client


def worker(client: TestClient, plans, clock, notifier) -> InProcessWorker:
    return InProcessWorker(client.app[QUEUES], asyncio.get_running_loop(), plans, clock=clock, notifier=notifier)


def button(fake: FakeTelegram, chat_id: int, label: str) -> tuple[int, str]:
    """The newest bot message in the chat with a button labelled `label`: its id and the button's data."""
    for message in reversed(fake.bot_messages(chat_id)):
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
            for key in row:
                if key["text"] == label:
                    return message["message_id"], key["callback_data"]
    raise AssertionError(f"no button {label!r} in chat {chat_id}")


async def press(fake: FakeTelegram, label: str, chat_id: int = USER_ID) -> dict[str, Any]:
    message_id, data = button(fake, chat_id, label)
    return await fake.user_presses(chat_id, message_id, data)


async def up_to_confirmation(fake: FakeTelegram) -> None:
    """The user's /payout dialogue as far as the Send button of the confirmation."""
    await fake.user_sends(USER_ID, "/payout")
    await fake.user_sends(USER_ID, "1500")
    await press(fake, "💳 To a bank card")
    await fake.user_sends(USER_ID, CARD)
    assert last_text(fake).startswith("Please check your claim:")


def admin_claims(fake: FakeTelegram) -> list[dict[str, Any]]:
    return [m for m in fake.bot_messages(ADMIN_CHAT_ID) if m["text"].startswith("💸 Payout claim")]


# ---- webhook mode: 5xx, and Telegram delivers again ---------------------------------------------

async def test_a_payout_confirmed_while_redis_is_stopped_is_redelivered_and_reaches_the_admins_once(
        webhook, fake, own_redis, plans, clock, notifier):
    await up_to_confirmation(fake)
    own_redis.stop()
    pressed = await press(fake, "✅ Send")
    assert [attempt.status for attempt in fake.outbox.attempts_of(pressed["update_id"])] == [503]
    assert (await PayoutClaim.find_one()).status is ClaimStatus.NEW, "recorded, but the admins not yet told"
    status = await fake.user_sends(USER_ID, "/status")
    assert fake.outbox.attempts_of(status["update_id"]) == [], "the chat's next update waits behind the failed one"
    assert fake.outbox.pending == 2 and not last_text(fake).endswith(FILED + ". You will be told when they decide.")

    own_redis.start()
    assert await fake.redeliver() == 0
    texts = [m["text"] for m in fake.bot_messages(USER_ID)]
    assert FILED in texts[-2] and texts[-1].startswith("You have no subscription"), "in Telegram's order"
    await worker(webhook, plans, clock, notifier).drain()
    runtime.uninstall()
    [claim] = admin_claims(fake)
    assert claim["text"].startswith(f"💸 Payout claim {(await PayoutClaim.find_one()).label}")
    assert [attempt.status for attempt in fake.outbox.attempts_of(pressed["update_id"])] == [503, 503, 200]


async def test_a_refused_callback_answer_does_not_undo_the_confirmation(webhook, fake, plans, clock, notifier):
    await up_to_confirmation(fake)
    fake.fail_callback_answers()
    pressed = await press(fake, "✅ Send")
    assert [attempt.status for attempt in fake.outbox.attempts_of(pressed["update_id"])] == [200]
    assert FILED in last_text(fake)
    headers = {"X-Telegram-Bot-Api-Secret-Token": fake.webhook["secret_token"]}
    for _ in range(2):  # redelivered: answered once, then Telegram refuses the second answer; nothing breaks
        assert (await webhook.post("/telegram/webhook", json=pressed, headers=headers)).status == 200
    query_id = pressed["callback_query"]["id"]
    assert [c["callback_query_id"] for c in fake.sent("answerCallbackQuery")].count(query_id) == 3
    assert fake.callback_answers[query_id] == 1
    await worker(webhook, plans, clock, notifier).drain()
    runtime.uninstall()
    assert len(admin_claims(fake)) == 1 and (await PayoutClaim.find_one()).status is ClaimStatus.NEW


async def test_the_users_own_mistakes_are_still_answered_politely(webhook, fake, monkeypatch, own_redis):
    own_redis.stop()  # none of these needs the queue: an outage elsewhere changes nothing for them
    await fake.user_sends(USER_ID, "/payout")
    await fake.user_sends(USER_ID, "abc")
    assert last_text(fake).startswith("That is not an amount.")
    await fake.user_sends(USER_ID, "/nonsense")
    assert last_text(fake).startswith("I don't know this command.")

    await fake.user_sends(USER_ID, "/start")
    message_id = fake.bot_messages(USER_ID)[-1]["message_id"]
    await fake.user_presses(USER_ID, message_id, "forged:button")
    assert fake.sent("answerCallbackQuery")[-1]["text"] == "This button is no longer valid. Send /start to begin again."

    async def unknown_plan(*args, **kwargs):
        raise UnknownPlan("month")

    monkeypatch.setattr("bot.routers.subscribe.offers_for", unknown_plan)
    update = await fake.user_sends(USER_ID, "/subscribe")
    assert last_text(fake) == "Sorry, that cannot be done: the request is no longer valid. Send /start to begin again."
    assert all(attempt.status == 200 for attempt in fake.outbox.attempts) and fake.outbox.pending == 0
    assert fake.outbox.attempts_of(update["update_id"])[0].status == 200


# ---- polling: retried in-process, then the admins are told ------------------------------------

class Backoff(Sleeps):
    """The retry middleware's sleep: records the delays, waits not at all, and may run `then` at the first."""

    def __init__(self, then: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._then = then

    async def __call__(self, seconds: float) -> None:
        await super().__call__(seconds)
        if self._then is not None and len(self.calls) == 1:
            self._then()


@pytest.fixture
async def start_polling(web, settings, plans, clock) -> AsyncIterator[Callable[[Backoff], Awaitable[None]]]:
    """`ymds bot`'s Dispatcher long-polling the fake, with the given sleep between its retries."""
    running: list[tuple[Any, Any, asyncio.Task[None]]] = []

    async def start(backoff: Backoff) -> None:
        bot = make_bot(settings)
        dispatcher = build_dispatcher(settings, plans, clock=clock, ledger=web.app[LEDGER],
                                      renewal_queue=web.app[QUEUES], retry_outages=RetryOutages((1, 5), sleep=backoff))
        task = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False))
        running.append((bot, dispatcher, task))

    yield start
    for bot, dispatcher, task in running:
        await dispatcher.stop_polling()
        await task
        await dispatcher.emit_shutdown(bot=bot)
        await bot.session.close()


async def until_text(fake: FakeTelegram, chat_id: int, start: str) -> str:
    return await fake.wait_for(lambda: next((m["text"] for m in fake.bot_messages(chat_id)
                                             if m["text"].startswith(start)), None))


async def polled_up_to_confirmation(fake: FakeTelegram) -> None:
    for text, answer in (("/payout", "How much should be paid out?"), ("1500", "Where should")):
        await fake.user_sends(USER_ID, text)
        await until_text(fake, USER_ID, answer)
    await press(fake, "💳 To a bank card")
    await until_text(fake, USER_ID, "Send the card number")
    await fake.user_sends(USER_ID, CARD)
    await until_text(fake, USER_ID, "Please check your claim:")


async def test_polling_retries_an_outage_with_backoff_and_tells_the_admins_when_it_still_fails(
        start_polling, fake, own_redis):
    backoff = Backoff()
    await start_polling(backoff)
    await polled_up_to_confirmation(fake)
    own_redis.stop()
    pressed = await press(fake, "✅ Send")

    alert = await until_text(fake, ADMIN_CHAT_ID, LOST)
    assert alert.startswith(f"{LOST} {pressed['update_id']} (callback_query) from user {USER_ID}: "
                            "LedgerUnavailable, 3 attempts.")
    assert backoff.calls == [1, 5]
    assert await until_text(fake, USER_ID, RETRY_LATER)
    assert not any(FILED in m["text"] for m in fake.bot_messages(USER_ID)) and CARD not in alert
    assert (await PayoutClaim.find_one()).status is ClaimStatus.NEW, "pressing Send again files it"


async def test_polling_recovers_when_redis_is_back_before_the_last_attempt(start_polling, fake, own_redis, web,
                                                                         plans, clock, notifier):
    backoff = Backoff(then=own_redis.start)
    await start_polling(backoff)
    await polled_up_to_confirmation(fake)
    own_redis.stop()
    await press(fake, "✅ Send")
    await until_text(fake, USER_ID, "Your claim")
    assert backoff.calls == [1] and not any(m["text"].startswith(LOST) for m in fake.bot_messages(ADMIN_CHAT_ID))
    await worker(web, plans, clock, notifier).drain()
    runtime.uninstall()
    assert len(admin_claims(fake)) == 1
