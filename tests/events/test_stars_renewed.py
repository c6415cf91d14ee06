"""A Telegram Stars subscription's renewal charge sends subscription.renewed; the first charge, .activated."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from settings import Settings
from tests.bot.conftest import USER_ID, bot_settings, fake, fake_telegram
from tests.bot.test_stars import drain, plans, subscribed, webhook
from tests.events.conftest import events_settings
from tests.events.receiver import EventReceiver

__all__ = ["drain", "fake", "fake_telegram", "plans", "webhook"]  # fixtures, imported for pytest


@pytest.fixture
def settings(yoomoney_emulator: tuple[Any, str], fake_telegram: tuple[Any, str],
             receiver_server: tuple[EventReceiver, TestServer]) -> Settings:
    return bot_settings(yoomoney_emulator[1], fake_telegram[1], stars_enabled=True,
                        stars_support_contact="@shop_owner", **events_settings(receiver_server))


async def test_a_stars_renewal_sends_subscription_renewed(webhook, fake, drain, clock, receiver):
    label, first = await subscribed(fake, drain)
    clock.now += timedelta(days=30)
    renewal = await fake.stars.renew(fake, fake.stars.subscription_of(USER_ID, label))
    await drain()
    charge = renewal["message"]["successful_payment"]["telegram_payment_charge_id"]

    events = [(e["type"], e["data"]["operation_id"]) for e in receiver.accepted()]
    assert events == [("payment.succeeded", first), ("subscription.activated", first),
                      ("payment.succeeded", charge), ("subscription.renewed", charge)]
    renewed = receiver.accepted()[-1]["data"]
    assert (renewed["provider"], renewed["user_id"], renewed["current_period_end"]) == (
        "telegram_stars", USER_ID, (clock.now + timedelta(days=30)).isoformat())
