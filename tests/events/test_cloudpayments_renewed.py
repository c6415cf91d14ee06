"""A subscription CloudPayments renews on its own clock sends subscription.renewed, as our own renewals do; one it
ends sends subscription.canceled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from settings import Settings
from tests.cloudpayments_subscription_support import subscribed
from tests.cloudpayments_support import cloudpayments_settings, cp, cp_server
from tests.conftest import YOOMONEY_API_TOKEN
from tests.events.conftest import events_settings
from tests.events.receiver import EventReceiver
from webhook_server.emulators.cloudpayments_wire import Kind

__all__ = ["cp", "cp_server"]  # fixtures, imported for pytest


@pytest.fixture
def settings(yoomoney_emulator: tuple[Any, str], cp_server: tuple[Any, str],
             receiver_server: tuple[EventReceiver, TestServer]) -> Settings:
    return cloudpayments_settings(cp_server[1], yoomoney_api_token=YOOMONEY_API_TOKEN,
                                  yoomoney_api_url=yoomoney_emulator[1], cloudpayments_recurrent_plans=["month"],
                                  **events_settings(receiver_server))


async def test_a_cloudpayments_renewal_sends_subscription_renewed(client, cp, worker, clock, receiver):
    sub = await subscribed(client, cp, worker, clock, 7401)
    assert [e["type"] for e in receiver.accepted()] == ["payment.succeeded", "subscription.activated"]
    clock.now = sub.local.current_period_end + timedelta(minutes=1)
    [renewal_tx] = await cp.run_schedule()
    await worker.drain()

    types = [e["type"] for e in receiver.accepted()]
    assert types == ["payment.succeeded", "subscription.activated", "payment.succeeded", "subscription.renewed"]
    renewed = receiver.accepted()[-1]["data"]
    assert (renewed["provider"], renewed["operation_id"]) == ("cloudpayments", str(renewal_tx))


async def test_cloudpayments_ending_the_subscription_sends_subscription_canceled_once(client, cp, worker, clock,
                                                                                      receiver):
    sub = await subscribed(client, cp, worker, clock, 7402)
    emulated = cp.subscriptions[sub.subscription_id]
    emulated.status = "Rejected"  # its charges were declined at CloudPayments
    for _ in range(2):  # and a redelivery
        assert (await cp.desk.send(Kind.RECURRENT, cp.desk.recurrent(emulated))).ok
    await worker.drain()
    [canceled] = [e for e in receiver.accepted() if e["type"] == "subscription.canceled"]
    assert canceled["data"] == {"user_id": 7402, "plan": "month", "auto_renew": False,
                                "current_period_end": sub.local.current_period_end.isoformat(),
                                "reason": "cloudpayments: Rejected"}
