"""Turning auto-renewal off in the bot stops a CloudPayments subscription at CloudPayments (issue 17.3): the
press goes through the real Dispatcher, the cancellation through the real RQ worker and /subscriptions/cancel
of the emulator over HTTP; a later charge of it is refused by our Check."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from billing.subscriptions import get_subscription
from bot.notice_keyboards import TURN_OFF
from bot.routers.renewals import RenewalChoice
from settings import Settings
from tests.bot.conftest import USER_ID, bot_settings, send
from tests.cloudpayments_subscription_support import subscribed
from tests.cloudpayments_support import CP_PUBLIC_ID, CP_SECRET, cp, cp_server
from webhook_server.emulators.cloudpayments_wire import Kind

__all__ = ["cp", "cp_server"]


def cloudpayments_bot_settings(yoomoney_url: str, telegram_url: str, cp_url: str, **extra: Any) -> Settings:
    """The bot's settings with CloudPayments (its emulator) setting up subscriptions for the month plan."""
    return bot_settings(yoomoney_url, telegram_url, cloudpayments_public_id=CP_PUBLIC_ID,
                        cloudpayments_api_secret=CP_SECRET, cloudpayments_api_url=cp_url,
                        cloudpayments_widget_url=cp_url + "/widget.js", cloudpayments_test_mode=True,
                        cloudpayments_recurrent_plans=["month"], **extra)


@pytest.fixture
def settings(yoomoney_emulator, fake_telegram, cp_server):  # type: ignore[no-untyped-def]
    return cloudpayments_bot_settings(yoomoney_emulator[1], fake_telegram[1], cp_server[1])


def turn_off_press(question: dict[str, Any], update_id: int) -> dict[str, Any]:
    """The user pressed "Turn it off" under the bot's /cancel answer."""
    return {"update_id": update_id, "callback_query": {
        "id": f"cq{update_id}", "chat_instance": "1", "data": RenewalChoice(action=TURN_OFF).pack(),
        "message": question, "from": {"id": USER_ID, "is_bot": False, "first_name": "Ivan", "language_code": "en"}}}


async def test_turning_auto_renewal_off_in_the_bot_cancels_the_cloudpayments_subscription(
        client, worker, dispatcher, bot, fake, clock, cp):
    sub = await subscribed(client, cp, worker, clock, USER_ID)
    await send(dispatcher, bot, "/cancel")
    await dispatcher.feed_raw_update(bot, turn_off_press(fake.bot_messages(USER_ID)[-1], 60))
    assert fake.sent("editMessageText")[-1]["text"].startswith("Automatic renewal is off")
    assert cp.subscriptions[sub.subscription_id].status == "Active"  # the worker cancels it
    await worker.drain()
    assert cp.subscriptions[sub.subscription_id].status == "Cancelled"
    assert [path for path, _, _ in cp.api_calls] == ["/subscriptions/cancel"]
    stored = await get_subscription(USER_ID)
    assert stored is not None and (stored.cloudpayments_subscription_id, stored.auto_renew) == (None, False)

    cp.subscriptions[sub.subscription_id].status = "Active"  # CloudPayments charges it anyway: we refuse
    clock.now = stored.current_period_end + timedelta(minutes=1)
    assert await cp.run_schedule() == []
    assert [reply.code for kind, reply in cp.replies if kind is Kind.CHECK][-1] == 13
