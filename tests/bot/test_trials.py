"""Trials: a plan's trial_days, free, once per Telegram user ever, through /subscribe's button and the
scheduler's usual expiry."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from billing.plans import Catalogue, load_plans
from billing.renewals.scheduler import tick
from billing.subscriptions import get_subscription, is_active
from db import SubscriptionStatus
from db.renewals import Renewal
from db.trials import TrialUse
from tests.bot.conftest import USER_ID, last_text, send
from tests.helpers import notification, post_notification
from webhook_server.keys import PROVIDERS, QUEUES, SETTINGS
from webhook_server.renewal_services import renewal_services

PLANS = """
[plans.month]
title = "1 month"
period_days = 30
prices = { RUB = 29900 }
trial_days = 7

[plans.year]
title = "12 months"
period_days = 365
prices = { RUB = 299000 }
"""


@pytest.fixture
def plans(tmp_path: Path) -> Catalogue:
    path = tmp_path / "plans.toml"
    path.write_text(PLANS, encoding="utf-8")
    return load_plans(path)


def trial_button(fake: Any) -> dict[str, Any] | None:
    rows = fake.bot_messages(USER_ID)[-1]["reply_markup"]["inline_keyboard"]
    found = [button for row in rows for button in row if "callback_data" in button
             and button["callback_data"].startswith("trial:")]
    return found[0] if found else None


def press(fake: Any, data: str, update_id: int) -> dict[str, Any]:
    message = fake.bot_messages(USER_ID)[-1]
    return {"update_id": update_id, "callback_query": {
        "id": f"cq{update_id}", "chat_instance": "1", "data": data, "message": message,
        "from": {"id": USER_ID, "is_bot": False, "first_name": "Ivan", "language_code": "en"}}}


async def test_the_trial_button_gives_the_plan_free_once(dispatcher, bot, fake, clock):
    await send(dispatcher, bot, "/subscribe")
    button = trial_button(fake)
    assert button is not None and button["text"] == "Try 1 month free for 7 days"

    await dispatcher.feed_raw_update(bot, press(fake, button["callback_data"], 20))
    assert last_text(fake).startswith("Your free trial of 1 month is on until")
    subscription = await get_subscription(USER_ID)
    assert subscription is not None and subscription.plan == "month" and subscription.payment_token is None
    assert subscription.current_period_end == clock() + timedelta(days=7)
    assert is_active(subscription, clock())

    await send(dispatcher, bot, "/subscribe", update_id=21, message_id=11)
    assert trial_button(fake) is None, "no trial offered once used"
    await dispatcher.feed_raw_update(bot, press(fake, button["callback_data"], 22))  # the old button, again
    assert last_text(fake) == "You have already used your free trial. Choose a plan with /subscribe."
    assert (await get_subscription(USER_ID)).current_period_end == clock() + timedelta(days=7)  # type: ignore[union-attr]


async def test_concurrent_taps_give_one_trial(dispatcher, bot, fake, clock):
    await send(dispatcher, bot, "/subscribe")
    button = trial_button(fake)
    assert button is not None
    await asyncio.gather(*(dispatcher.feed_raw_update(bot, press(fake, button["callback_data"], 30 + n))
                           for n in range(8)))

    subscription = await get_subscription(USER_ID)
    assert subscription is not None and subscription.current_period_end == clock() + timedelta(days=7)
    assert subscription.applied_operations == [f"trial:{USER_ID}"]
    assert await TrialUse.find_all().count() == 1
    texts = [message["text"] for message in fake.bot_messages(USER_ID)[1:]]
    assert sum(text.startswith("Your free trial") for text in texts) == 1
    assert sum(text.startswith("You have already used") for text in texts) == 7


async def test_a_trial_crashed_before_its_period_is_finished_by_the_next_tap(dispatcher, bot, fake, clock):
    await TrialUse(user_id=USER_ID, plan="month", days=7, started_at=clock()).insert()  # crash after the insert
    await send(dispatcher, bot, "/subscribe")
    assert trial_button(fake) is None
    await dispatcher.feed_raw_update(bot, press(fake, "trial:month", 40))
    subscription = await get_subscription(USER_ID)
    assert subscription is not None and subscription.current_period_end == clock() + timedelta(days=7)
    assert (await TrialUse.find_one(TrialUse.user_id == USER_ID)).applied  # type: ignore[union-attr]


async def test_a_plan_without_trial_days_refuses_a_forged_button(dispatcher, bot, fake):
    await send(dispatcher, bot, "/subscribe")
    await dispatcher.feed_raw_update(bot, press(fake, "trial:year", 50))
    assert fake.sent("answerCallbackQuery")[-1]["text"].startswith("This trial is no longer offered")
    assert await get_subscription(USER_ID) is None and await TrialUse.find_all().count() == 0


async def test_a_trial_ends_through_the_usual_expiry_with_a_pay_link_and_no_charge(
        dispatcher, bot, fake, clock, client, worker, notifier):  # notifier: to the fake Bot API
    await send(dispatcher, bot, "/subscribe")
    await dispatcher.feed_raw_update(bot, press(fake, "trial:month", 60))
    services = renewal_services(client.app[SETTINGS], client.app[QUEUES], client.app[PROVIDERS], clock)
    clock.now += timedelta(days=7) - timedelta(seconds=1)
    assert (await tick(clock(), services)).opened == 0, "no saved method: nothing to charge"
    clock.now += timedelta(seconds=2)
    assert (await tick(clock(), services)).expired == 1
    await worker.drain()

    subscription = await get_subscription(USER_ID)
    assert subscription is not None and subscription.status is SubscriptionStatus.EXPIRED
    assert await Renewal.find_all().count() == 0
    notice = json.dumps(fake.bot_messages(USER_ID)[-1], ensure_ascii=False)
    assert "ended" in notice, notice
    label = re.search(r"/pay/(inv_[0-9a-f]+)", notice).group(1)  # type: ignore[union-attr]
    assert await post_notification(client, notification(label)) == 200, "the notice's link is payable"
    await worker.drain()
    renewed = await get_subscription(USER_ID)
    assert renewed is not None and is_active(renewed, clock())
    assert renewed.current_period_end == clock() + timedelta(days=30)
