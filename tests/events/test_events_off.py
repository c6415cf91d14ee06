"""Without EVENTS_URL nothing is recorded and nothing is sent."""

from __future__ import annotations

from typing import Any

import pytest

from db.events import OutboundEvent
from settings import Settings
from tests.conftest import YOOMONEY_API_TOKEN, make_settings
from tests.helpers import new_invoice, notification, post_notification


@pytest.fixture
def settings(yoomoney_emulator: tuple[Any, str]) -> Settings:
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1])


async def test_without_events_url_a_payment_records_and_sends_no_event(client, worker, receiver, queues):
    invoice = await new_invoice(client, user_id=520)
    assert await post_notification(client, notification(invoice["label"])) == 200
    await worker.drain()
    assert await OutboundEvent.find_all().to_list() == []
    assert receiver.got == [] and len(queues.events) == 0
