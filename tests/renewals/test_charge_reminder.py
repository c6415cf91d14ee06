"""The notice before every automatic charge (issue 17.2): RENEWAL_NOTICE_DAYS before the period ends the
user hears the date and the amount, once per period, with a button that turns auto-renewal off in one tap.

Through the real seams: the scheduler's tick, the real RQ worker on the real Redis, the Telegram notifier
against the fake Bot API, and the real Dispatcher handling the button's callback query.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from billing.renewals.scheduler import tick
from billing.subscriptions import get_subscription
from db import Subscription
from settings import Settings
from tests.bot.conftest import USER_ID, bot, bot_settings, dispatcher, fake, fake_telegram, notifier, sleeps
from tests.conftest import FrozenClock
from tests.helpers import paid_with_saved_method
from tests.yookassa_support import yookassa_emulator, yookassa_settings
from webhook_server.emulators.telegram import FakeTelegram
from webhook_server.emulators.yookassa import YooKassaEmulator
from webhook_server.emulators.yoomoney import YooMoneyEmulator
from webhook_server.keys import PROVIDERS, QUEUES, SETTINGS
from webhook_server.renewal_services import renewal_services
from webhook_server.runner import InProcessWorker

__all__ = ["bot", "dispatcher", "fake", "fake_telegram", "notifier", "sleeps", "yookassa_emulator"]  # fixtures

TOKEN = "pm-2f1a-upcoming"
NOTICE_DAYS = 3


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str], fake_telegram: tuple[FakeTelegram, str],
             yookassa_emulator: tuple[YooKassaEmulator, str]) -> Settings:
    return bot_settings(yoomoney_emulator[1], fake_telegram[1], renewal_notice_days=NOTICE_DAYS,
                        **yookassa_settings(yookassa_emulator[1] + "/v3"))


def services_of(client: TestClient, clock: FrozenClock):  # type: ignore[no-untyped-def]
    app = client.app
    return renewal_services(app[SETTINGS], app[QUEUES], app[PROVIDERS], clock)


async def renewing_subscription(client: TestClient, worker: InProcessWorker, clock: FrozenClock) -> Subscription:
    """A paid month with a saved YooKassa method the payer agreed to have charged."""
    await paid_with_saved_method(client, worker, USER_ID, provider="yookassa", token=TOKEN, method="Visa •••• 4242")
    consent = {"at": clock(), "ip": "203.0.113.5", "text_version": "test", "provider": "yookassa", "amount": 29900,
               "currency": "RUB", "period_days": 30}
    await Subscription.get_motor_collection().update_one(
        {"user_id": USER_ID}, {"$set": {"auto_renew": True, "renewal_consent": consent}})
    subscription = await get_subscription(USER_ID)
    assert subscription is not None
    return subscription


def press(message: dict[str, Any], update_id: int) -> dict[str, Any]:
    data = message["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    return {"update_id": update_id, "callback_query": {
        "id": f"cq{update_id}", "chat_instance": "1", "data": data, "message": message,
        "from": {"id": USER_ID, "is_bot": False, "first_name": "Ivan", "language_code": "en"}}}


def upcoming(fake: FakeTelegram) -> list[dict[str, Any]]:
    return [message for message in fake.bot_messages(USER_ID) if "renews automatically" in message["text"]]


async def test_notice_goes_out_once_with_the_amount_and_a_cancel_that_turns_renewal_off(
        client, worker, dispatcher, bot, fake, clock):
    subscription = await renewing_subscription(client, worker, clock)
    services = services_of(client, clock)
    clock.now = subscription.current_period_end - timedelta(days=NOTICE_DAYS, hours=1)
    assert (await tick(clock(), services)).charge_notices == 0, "not yet"
    clock.now = subscription.current_period_end - timedelta(days=NOTICE_DAYS) + timedelta(hours=1)
    assert (await tick(clock(), services)).charge_notices == 1
    assert (await tick(clock(), services)).charge_notices == 0, "once per period, however many ticks"
    await worker.drain()
    assert (await tick(clock(), services_of(client, clock))).charge_notices == 0, "a restarted scheduler too"
    await worker.drain()
    [notice] = upcoming(fake)
    assert "299\xa0RUB will be charged" in notice["text"], notice["text"]
    assert TOKEN not in notice["text"] and "/pay/" not in notice["text"], "no pay-by-hand link: it renews itself"
    [[button]] = notice["reply_markup"]["inline_keyboard"]
    assert button["text"] == "Turn off automatic renewal"

    await dispatcher.feed_raw_update(bot, press(notice, 90))
    assert fake.sent("editMessageText")[-1]["text"].startswith("Automatic renewal is off")
    stored = await get_subscription(USER_ID)
    assert stored is not None and stored.auto_renew is False
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    assert (await tick(clock(), services)).opened == 0, "nothing is charged after the tap"


async def test_next_period_gets_its_own_notice_and_a_cancel_before_sending_drops_it(
        client, worker, fake, clock):
    subscription = await renewing_subscription(client, worker, clock)
    services = services_of(client, clock)
    clock.now = subscription.current_period_end - timedelta(days=1)
    assert (await tick(clock(), services)).charge_notices == 1
    await worker.drain()
    next_end = subscription.current_period_end + timedelta(days=30)
    await Subscription.get_motor_collection().update_one({"user_id": USER_ID},
                                                         {"$set": {"current_period_end": next_end}})
    clock.now = next_end - timedelta(days=1)
    assert (await tick(clock(), services)).charge_notices == 1, "a new period, a new notice"
    await Subscription.get_motor_collection().update_one({"user_id": USER_ID}, {"$set": {"auto_renew": False}})
    await worker.drain()  # the user turned renewal off after the notice was queued: it is not sent
    assert len(upcoming(fake)) == 1


async def test_subscriptions_nothing_charges_get_no_charge_notice(client, worker, fake, clock):
    subscription = await renewing_subscription(client, worker, clock)
    await Subscription.get_motor_collection().update_one({"user_id": USER_ID}, {"$set": {"auto_renew": False}})
    clock.now = subscription.current_period_end - timedelta(days=1)
    report = await tick(clock(), services_of(client, clock))
    assert report.charge_notices == 0
    await worker.drain()
    assert upcoming(fake) == []
