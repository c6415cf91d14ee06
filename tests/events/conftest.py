"""The app and worker of tests/conftest.py with EVENTS_URL pointing at a local receiver (tests/events/receiver.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from settings import Settings
from tests.conftest import YOOMONEY_API_TOKEN, make_settings
from tests.events.receiver import EventReceiver

EVENTS_SECRET = "whsec-test-0123456789abcdef0123456789abcdef"
RETRIES = [60, 300, 1800]


@pytest.fixture
async def receiver_server() -> AsyncIterator[tuple[EventReceiver, TestServer]]:
    receiver = EventReceiver(secret=EVENTS_SECRET)
    server = TestServer(receiver.app())
    await server.start_server()
    yield receiver, server
    await server.close()


@pytest.fixture
def receiver(receiver_server: tuple[EventReceiver, TestServer]) -> EventReceiver:
    return receiver_server[0]


def events_settings(receiver_server: tuple[EventReceiver, TestServer]) -> dict[str, Any]:
    return {"events_url": str(receiver_server[1].make_url("/hooks/ymds")), "events_secret": EVENTS_SECRET,
            "events_retry_intervals": RETRIES, "events_timeout_seconds": 5}


@pytest.fixture
def settings(yoomoney_emulator: tuple[Any, str], receiver_server: tuple[EventReceiver, TestServer]) -> Settings:
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
                         **events_settings(receiver_server))
