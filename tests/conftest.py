"""Shared fixtures: settings, the in-memory database, the real Redis (tests/redis_server.py), the app, the YooMoney
emulator, a worker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from billing import runtime
from billing.plans import Catalogue, load_plans
from billing.ports import (
    EventUndeliveredNotice,
    ExtraNotice,
    FiscalRefusalNotice,
    HoldNotice,
    JobFailureNotice,
    PaymentNotice,
    PayoutNotice,
    ReceiptNotice,
    RefundCanceledNotice,
    RenewalNotice,
    ReversalNotice,
)
from rq_access import RqQueues
from settings import Settings
from tests.redis_server import redis_base_url, shared_redis, xdist_worker_index
from webhook_server.app import create_app
from webhook_server.emulators.yoomoney import YooMoneyEmulator
from webhook_server.keys import PROVIDERS, QUEUES, SETTINGS
from webhook_server.renewal_services import renewal_services
from webhook_server.runner import InProcessWorker

# every log record of the run, for tests/test_payout_logs.py; the xdist workers and the order of the tests
pytest_plugins = ("tests.log_guard", "tests.parallel")
ROOT = Path(__file__).resolve().parent.parent
# Each test run flushes its own Redis database; runs side by side pick different ones. Every pytest-xdist worker
# starts a Redis server of its own (tests/redis_server.py); on a shared TEST_REDIS_URL each takes the next database.
REDIS_TEST_DB = int(os.environ.get("YMDS_TEST_REDIS_DB", "13")) + (xdist_worker_index() if shared_redis() else 0)
REDIS_TEST_URL = f"{redis_base_url()}/{REDIS_TEST_DB}"  # TEST_REDIS_URL, or a real Redis of our own
YOOMONEY_SECRET = "01234567890ABCDEF01234567890"  # the reference's test-vector secret
YOOMONEY_WALLET = "4100118000000000"
YOOMONEY_API_TOKEN = "test-yoomoney-api-token"
ADMIN_TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class FrozenClock:
    """An injectable clock: tests move time explicitly instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "development",
        "admin_api_token": ADMIN_TOKEN,
        "link_secret": "test-link-secret",
        "public_base_url": "http://shop.test",
        "mongodb_uri": "memory://",
        "redis_url": REDIS_TEST_URL,
        "plans_file": ROOT / "plans.toml",
        "job_max_retries": 0,
        "yoomoney_wallet": YOOMONEY_WALLET,
        "yoomoney_notification_secret": YOOMONEY_SECRET,
        "yoomoney_quickpay_url": "http://yoomoney.test/quickpay/confirm",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def redis_conn() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        connection.flushdb()
    except redis.ConnectionError:
        pytest.fail(f"the test Redis at {REDIS_TEST_URL} does not answer")
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def plans() -> Catalogue:
    return load_plans(ROOT / "plans.toml")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def yoomoney_emulator() -> AsyncIterator[tuple[YooMoneyEmulator, str]]:
    emulator = YooMoneyEmulator(secret=YOOMONEY_SECRET, notify_url="", api_token=YOOMONEY_API_TOKEN,
                                wallet=YOOMONEY_WALLET)
    server = TestServer(emulator.app())
    await server.start_server()
    yield emulator, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str]) -> Settings:
    _, emulator_url = yoomoney_emulator
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=emulator_url)


@pytest.fixture
async def client(
    settings: Settings, plans: Catalogue, clock: FrozenClock, redis_conn: redis.Redis,
    yoomoney_emulator: tuple[YooMoneyEmulator, str],
) -> AsyncIterator[TestClient]:
    app = create_app(settings, plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as test_client:
        yoomoney_emulator[0].notify_url = str(test_client.make_url("/notify/yoomoney"))
        yield test_client


@pytest.fixture
def queues(client: TestClient) -> RqQueues:
    return client.app[QUEUES]


class RecordingNotifier:
    def __init__(self) -> None:
        self.notices: list[PaymentNotice] = []
        self.reversals: list[ReversalNotice] = []
        self.failures: list[JobFailureNotice] = []
        self.extras: list[ExtraNotice] = []
        self.holds: list[HoldNotice] = []
        self.payouts: list[PayoutNotice] = []  # every payout notice, its kind in .event ("filed", "paid", ...)
        self.renewals: list[RenewalNotice] = []
        self.canceled_refunds: list[RefundCanceledNotice] = []
        self.receipts: list[ReceiptNotice] = []
        self.fiscal_refusals: list[FiscalRefusalNotice] = []
        self.undelivered_events: list[EventUndeliveredNotice] = []

    async def payment_accepted(self, notice: PaymentNotice) -> None:
        self.notices.append(notice)

    async def payment_reversed(self, notice: ReversalNotice) -> None:
        self.reversals.append(notice)

    async def job_failed(self, notice: JobFailureNotice) -> None:
        self.failures.append(notice)

    async def receipt_ready(self, notice: ReceiptNotice) -> None:
        self.receipts.append(notice)

    async def event_undelivered(self, notice: EventUndeliveredNotice) -> None:
        self.undelivered_events.append(notice)

    async def fiscal_refused(self, notice: FiscalRefusalNotice) -> None:
        self.fiscal_refusals.append(notice)

    async def extra_payment(self, notice: ExtraNotice) -> None:
        self.extras.append(notice)

    async def payment_held(self, notice: HoldNotice) -> None:
        self.holds.append(notice)

    async def renewal_changed(self, notice: RenewalNotice) -> None:
        self.renewals.append(notice)

    async def refund_canceled(self, notice: RefundCanceledNotice) -> None:
        self.canceled_refunds.append(notice)

    async def payout_filed(self, notice: PayoutNotice) -> None:
        self.payouts.append(notice)

    async def payout_changed(self, notice: PayoutNotice) -> None:
        self.payouts.append(notice)

    async def payout_alert(self, notice: PayoutNotice) -> None:
        self.payouts.append(replace(notice, event=f"alert:{notice.event}"))


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
async def worker(
    client: TestClient, plans: Catalogue, clock: FrozenClock, notifier: RecordingNotifier
) -> AsyncIterator[InProcessWorker]:
    """A real RQ worker on the real Redis, running jobs on the test's event loop (where the database lives)."""
    renewals = renewal_services(client.app[SETTINGS], client.app[QUEUES], client.app[PROVIDERS], clock)
    in_process = InProcessWorker(client.app[QUEUES], asyncio.get_running_loop(), plans, clock=clock,
                                 notifier=notifier, renewals=renewals, providers=client.app[PROVIDERS].providers)
    yield in_process
    runtime.uninstall()
