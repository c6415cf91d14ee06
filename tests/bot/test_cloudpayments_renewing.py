"""A subscription that a CloudPayments subscription renews (cloudpayments_subscription_id set, no saved method of
ours) renews automatically for every reader (billing.subscriptions.renews_automatically): the bot's /cancel
offers to turn it off, the admin API and the renewal page say it is on, the notice RENEWAL_NOTICE_DAYS before
CloudPayments' charge goes out with the amount it charges and a one-tap cancel. Turning it off reaches
/subscriptions/cancel of the emulator through the real RQ worker, and the user hears when CloudPayments
confirmed. Through the real Dispatcher, the fake Bot API, our app over HTTP and the CloudPayments emulator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from billing.providers.cloudpayments.subscriptions import request_stop
from billing.renewals.scheduler import tick
from billing.subscriptions import get_subscription
from db.cloudpayments import CloudPaymentsSubscription
from tests.bot.conftest import USER_ID, last_text, send
from tests.bot.test_cloudpayments_cancel import cloudpayments_bot_settings
from tests.cloudpayments_subscription_support import services_of, subscribed
from tests.cloudpayments_support import cp, cp_server
from tests.conftest import AUTH
from tests.helpers import Forms, new_invoice, path_of
from tests.renewals.test_renewal_page import renewal_link
from webhook_server.emulators.telegram import FakeTelegram
from webhook_server.keys import QUEUES

__all__ = ["cp", "cp_server"]
NOTICE_DAYS = 3


@pytest.fixture
def settings(yoomoney_emulator, fake_telegram, cp_server):  # type: ignore[no-untyped-def]
    return cloudpayments_bot_settings(yoomoney_emulator[1], fake_telegram[1], cp_server[1],
                                      renewal_notice_days=NOTICE_DAYS)


def press(message: dict[str, Any], label: str, update_id: int) -> dict[str, Any]:
    """The user pressed the button `label` under the bot's message."""
    data = next(button["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for button in row
                if button["text"] == label)
    return {"update_id": update_id, "callback_query": {
        "id": f"cq{update_id}", "chat_instance": "1", "data": data, "message": message,
        "from": {"id": USER_ID, "is_bot": False, "first_name": "Ivan", "language_code": "en"}}}


async def admin_view(client: TestClient) -> dict[str, Any]:
    response = await client.get(f"/api/users/{USER_ID}/subscription", headers=AUTH)
    assert response.status == 200
    return dict(await response.json())


def told_cancelled(fake: FakeTelegram) -> list[str]:
    return [str(m["text"]) for m in fake.bot_messages(USER_ID) if "cancelled at CloudPayments" in str(m["text"])]


async def test_cancel_turns_a_cloudpayments_subscription_off_and_the_user_hears_when_it_is_cancelled(
        client, worker, dispatcher, bot, fake, clock, cp):
    sub = await subscribed(client, cp, worker, clock, USER_ID)
    shown = await admin_view(client)
    assert (shown["auto_renew"], shown["payment_provider"]) == (True, "cloudpayments")

    await send(dispatcher, bot, "/cancel")
    question = fake.bot_messages(USER_ID)[-1]
    assert question["text"].startswith("Turn off automatic renewal of"), question["text"]
    await dispatcher.feed_raw_update(bot, press(question, "Turn it off", 60))
    done = fake.sent("editMessageText")[-1]["text"]
    assert done.startswith("Automatic renewal is off") and "cancelling your subscription at CloudPayments" in done

    assert cp.subscriptions[sub.subscription_id].status == "Active"  # the worker has not run yet
    assert (await admin_view(client))["auto_renew"] is False
    await send(dispatcher, bot, "/cancel", update_id=61, message_id=11)
    assert last_text(fake).startswith("Automatic renewal is already off")
    assert told_cancelled(fake) == []

    await worker.drain()
    assert cp.subscriptions[sub.subscription_id].status == "Cancelled"
    assert [path for path, _, _ in cp.api_calls] == ["/subscriptions/cancel"]
    [told] = told_cancelled(fake)
    assert "will not be charged again" in told
    await send(dispatcher, bot, "/cancel", update_id=62, message_id=12)
    assert last_text(fake) == "You have no automatic renewal to turn off."


async def test_the_admin_api_keeps_a_cloudpayments_subscription_on_and_turns_it_off(client, worker, clock, cp):
    sub = await subscribed(client, cp, worker, clock, USER_ID)
    path = f"/api/users/{USER_ID}/subscription"
    kept = await client.patch(path, json={"auto_renew": True}, headers=AUTH)
    assert kept.status == 200 and (await kept.json())["auto_renew"] is True, "on already: nothing to refuse"
    off = await client.patch(path, json={"auto_renew": False}, headers=AUTH)
    assert off.status == 200 and (await off.json())["auto_renew"] is False
    await worker.drain()
    assert cp.subscriptions[sub.subscription_id].status == "Cancelled"
    again = await client.patch(path, json={"auto_renew": True}, headers=AUTH)
    assert again.status == 409, "turned off, only the payment page's choice renews it again"


async def test_the_renewal_page_shows_a_cloudpayments_subscription_on_and_turns_it_off(client, worker, clock, cp):
    sub = await subscribed(client, cp, worker, clock, USER_ID)
    invoice = await new_invoice(client, user_id=USER_ID)
    link = renewal_link(await (await client.get(path_of(invoice["pay_url"]))).text())
    forms = Forms()
    forms.feed(await (await client.get(link)).text())
    assert "cancel-renewal" in forms.forms, "the page offers to turn automatic renewal off"
    done = await client.post(forms.forms["cancel-renewal"]["action"])
    assert done.status == 200 and "Automatic renewal is off" in await done.text()
    await worker.drain()
    assert cp.subscriptions[sub.subscription_id].status == "Cancelled"


async def test_the_notice_before_cloudpayments_charge_names_its_amount_and_cancels_it_in_one_tap(
        client, worker, dispatcher, bot, fake, clock, cp):
    sub = await subscribed(client, cp, worker, clock, USER_ID)
    await CloudPaymentsSubscription.get_motor_collection().update_one(  # set up when the month cost 199 ₽
        {"subscription_id": sub.subscription_id}, {"$set": {"amounts": {"RUB": 19900}}})
    services = services_of(client, clock)
    end = sub.local.current_period_end
    clock.now = end - timedelta(days=NOTICE_DAYS, hours=1)
    assert (await tick(clock(), services)).charge_notices == 0, "not yet"
    clock.now = end - timedelta(days=NOTICE_DAYS) + timedelta(hours=1)
    report = await tick(clock(), services)
    assert (report.charge_notices, report.reminded) == (1, 0), "the notice of the charge, no pay-here reminder"
    assert (await tick(clock(), services)).charge_notices == 0, "once per period"
    await worker.drain()
    [notice] = [m for m in fake.bot_messages(USER_ID) if "renews automatically" in str(m["text"])]
    assert "199" in notice["text"] and "299" not in notice["text"], notice["text"]

    await dispatcher.feed_raw_update(bot, press(notice, "Turn off automatic renewal", 70))
    await worker.drain()
    assert cp.subscriptions[sub.subscription_id].status == "Cancelled"
    assert len(told_cancelled(fake)) == 1
    stored = await get_subscription(USER_ID)
    assert stored is not None and (stored.cloudpayments_subscription_id, stored.auto_renew) == (None, False)


async def test_a_subscription_stopped_for_a_refund_is_cancelled_without_telling_the_user_it_was_turned_off(
        client, worker, fake, clock, cp):
    sub = await subscribed(client, cp, worker, clock, USER_ID)
    row = await CloudPaymentsSubscription.by_id(sub.subscription_id)
    assert row is not None
    await request_stop(row, "a payment of it was refunded", clock(), client.app[QUEUES])  # as a refund does
    await worker.drain()
    assert cp.subscriptions[sub.subscription_id].status == "Cancelled"
    assert told_cancelled(fake) == [], "the refund's own notice speaks for it"
