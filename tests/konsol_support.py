"""What the payout tests share: konsol.pro's emulator on loopback, settings pointing at it, the worker's
payout services, claims made the way the bot makes them, and running RQ's scheduled jobs now."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from billing.payouts import PayoutServices
from billing.payouts.cards import CardCipher
from billing.payouts.claims import accept, confirm, new_draft
from db.payouts import PayoutClaim
from rq_access import RqQueues
from settings import Settings
from tests.conftest import YOOMONEY_API_TOKEN, FrozenClock, make_settings
from webhook_server.emulators.konsol import KonsolEmulator
from webhook_server.keys import QUEUES, SETTINGS
from webhook_server.payout_services import OwnSessionTransport, close_payout_services, payout_services

KONSOL_TOKEN = "test-konsol-token-7f3a9c"
KONSOL_SECRET = "konsol_webhook_test_secret"  # the reference's vector secret
CARD = "2200707355126412"  # Luhn-valid numbers used nowhere else in the suite, so the log check can grep them
OTHER_CARD = "4276382910457739"
FAILING_CARD = "2200000000000004"  # the emulator fails cards ending 0004
PHONE = "+79161234567"
SBER = "100000000111"
FULL_NUMBERS = (CARD, OTHER_CARD, FAILING_CARD)
AMOUNT = 150000  # 1 500.00 RUB


def konsol_settings(emulator_url: str, **overrides: Any) -> dict[str, Any]:
    """Settings of a shop with payouts: the emulator's address and secrets, retries without waiting. The
    timeout is konsol.pro's default: a loaded machine never turns a slow answer into a lost one; a test of
    a timeout makes the emulator hang and sets its own."""
    return {"konsol_api_token": KONSOL_TOKEN, "konsol_base_url": emulator_url, "konsol_webhook_secret": KONSOL_SECRET,
            "konsol_timeout": 30, "job_retry_intervals": [0], **overrides}


@pytest.fixture
def settings(yoomoney_emulator: Any, konsol_server: tuple[KonsolEmulator, str]) -> Settings:
    """A shop with payouts: the YooMoney emulator as in every app test, konsol.pro's emulator for payouts."""
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
                         **konsol_settings(konsol_server[1]))


@pytest.fixture
async def konsol_server() -> AsyncIterator[tuple[KonsolEmulator, str]]:
    """konsol.pro on loopback, on a clock of its own that the test moves (`emulator.clock.now`)."""
    emulator = KonsolEmulator(token=KONSOL_TOKEN, webhook_secret=KONSOL_SECRET, notify_url="",
                              clock=FrozenClock(datetime.now(UTC).replace(microsecond=0)))
    server = TestServer(emulator.app())
    await server.start_server()
    yield emulator, str(server.make_url("")).rstrip("/")
    emulator.release.set()
    await server.close()


@pytest.fixture
def konsol(konsol_server: tuple[KonsolEmulator, str], client: TestClient) -> KonsolEmulator:
    """The emulator, delivering its webhooks to the app under test."""
    emulator = konsol_server[0]
    emulator.notify_url = str(client.make_url("/notify/konsol"))
    return emulator


@pytest.fixture
async def payouts(worker: Any, client: TestClient) -> AsyncIterator[PayoutServices]:
    """The worker's payout services, as `ymds worker` builds them."""
    services = payout_services(worker_settings(client), client.app[QUEUES], OwnSessionTransport(10))
    assert services is not None
    worker.runtime.payouts = services
    yield services
    await close_payout_services(services)


def worker_settings(client: TestClient) -> Settings:
    return client.app[SETTINGS]


def cipher_for(client: TestClient) -> CardCipher:
    return CardCipher.from_link_key(worker_settings(client).link_key)


async def filed_claim(client: TestClient, now: datetime, *, user_id: int = 777, amount: int = AMOUNT,
                      card: str | None = CARD, phone: str | None = None, bank_id: str | None = None) -> PayoutClaim:
    """A claim the way the bot files it: a draft, then confirmed (the admins' notice is queued)."""
    queue = client.app[QUEUES]
    draft = await new_draft(user_id=user_id, first_name="Ivan", last_name="Petrov", language="en", amount=amount,
                            cipher=cipher_for(client), queue=queue, now=now, card_number=card if not phone else None,
                            phone=phone, bank_id=bank_id, bank_name="Сбербанк" if bank_id else None)
    claim = await confirm(draft.label, user_id, now, queue)
    assert claim is not None
    return claim


async def accepted_claim(client: TestClient, now: datetime, **options: Any) -> PayoutClaim:
    claim = await filed_claim(client, now, **options)
    decision = await accept(claim.label, by=1001, by_name="@boss", now=now, queue=client.app[QUEUES])
    assert decision.won
    return decision.claim


async def stored(label: str) -> PayoutClaim:
    claim = await PayoutClaim.find_one({"label": label})
    assert claim is not None
    return claim


def scheduled(queues: RqQueues) -> list[Job]:
    """Jobs RQ holds for later (polls, expiries), in the fulfilment queue."""
    registry = ScheduledJobRegistry(queue=queues.fulfilment)
    return [job for job in Job.fetch_many(registry.get_job_ids(), connection=queues.connection) if job is not None]


def run_scheduled_now(queues: RqQueues, func_name: str) -> int:
    """Move the scheduled jobs of one function into the queue, as RQ's scheduler does when they are due."""
    registry = ScheduledJobRegistry(queue=queues.fulfilment)
    moved = 0
    for job in scheduled(queues):
        if job.func_name.endswith(func_name):
            registry.remove(job)
            Queue(queues.fulfilment.name, connection=queues.connection).enqueue_job(job)
            moved += 1
    return moved
