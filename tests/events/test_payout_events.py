"""payout.paid and payout.failed from konsol.pro's real path: its emulator over HTTP, its webhooks into our app."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from settings import Settings
from tests.conftest import YOOMONEY_API_TOKEN, make_settings
from tests.events.conftest import events_settings
from tests.events.receiver import EventReceiver
from tests.konsol_support import AMOUNT, accepted_claim, konsol, konsol_server, konsol_settings, payouts

__all__ = ["konsol", "konsol_server", "payouts"]  # fixtures, imported for pytest


@pytest.fixture
def settings(yoomoney_emulator: tuple[Any, str], konsol_server: tuple[Any, str],
             receiver_server: tuple[EventReceiver, TestServer]) -> Settings:
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
                         **konsol_settings(konsol_server[1]), **events_settings(receiver_server))


def payout_events(receiver: EventReceiver) -> list[dict[str, Any]]:
    return [event for event in receiver.accepted() if event["type"].startswith("payout.")]


async def test_a_paid_payout_sends_payout_paid_once(client, worker, konsol, payouts, clock, receiver):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [payment] = konsol.created()
    assert payout_events(receiver) == [], "submitted is not an outcome"
    assert await konsol.settle(payment["id"]) == [200]
    await worker.drain()
    assert await konsol.settle(payment["id"]) == [200]  # konsol.pro's webhook again
    await worker.drain()

    [paid] = payout_events(receiver)
    assert paid["type"] == "payout.paid"
    assert paid["data"] == {"claim": claim.label, "user_id": 777, "amount": AMOUNT, "currency": "RUB",
                            "method": "card", "konsol_id": payment["id"], "reason": "",
                            "settled_at": clock.now.isoformat()}


async def test_a_payout_konsol_refuses_sends_payout_failed(client, worker, konsol, payouts, clock, receiver):
    konsol.fail_next("create", 422, "the card is blocked")
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [failed] = payout_events(receiver)
    assert failed["type"] == "payout.failed"
    assert (failed["data"]["claim"], failed["data"]["reason"]) == (claim.label, "the card is blocked")
