"""Renewals of saved methods, end to end on each provider that has them: the scheduler, the real RQ worker on
the real Redis, the provider's emulator over HTTP, the ledger; time moves by an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from billing.ports import RenewalEvent
from billing.providers.payme.protocol import to_ms
from billing.renewals import RenewalServices
from billing.renewals.scheduler import tick
from billing.subscriptions import get_subscription
from db import Operation, OperationStatus, Subscription, SubscriptionStatus
from db.renewals import Renewal, RenewalStatus
from settings import Settings
from tests.billing.test_fulfilment import crash_at
from tests.cloudpayments_support import CP_PUBLIC_ID, CP_SECRET
from tests.conftest import YOOMONEY_API_TOKEN, FrozenClock, RecordingNotifier, make_settings
from tests.helpers import get_json, paid_with_saved_method
from tests.payme_support import PAYME_KEY, PAYME_MERCHANT
from tests.renewals.rigs import Rig, cloudpayments_rig, payme_rig, yookassa_rig
from tests.yookassa_support import SECRET_KEY, SHOP_ID, yookassa_settings
from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator
from webhook_server.emulators.payme import PaymeEmulator
from webhook_server.emulators.yookassa import YooKassaEmulator
from webhook_server.emulators.yoomoney import YooMoneyEmulator
from webhook_server.runner import InProcessWorker

USER = 9001
PERIOD = timedelta(days=30)
RETRIES = [3600, 86400, 259200]
PROVIDERS = ["yookassa", "cloudpayments", "payme"]


@pytest.fixture
async def emulators(clock: FrozenClock) -> AsyncIterator[dict[str, tuple[Any, str]]]:
    started: dict[str, tuple[Any, str]] = {}
    servers = []
    for name, emulator in (("yookassa", YooKassaEmulator(shop_id=SHOP_ID, secret_key=SECRET_KEY)),
                           ("cloudpayments", CloudPaymentsEmulator(public_id=CP_PUBLIC_ID, api_secret=CP_SECRET,
                                                                   notify_base="")),
                           ("payme", PaymeEmulator(merchant_id=PAYME_MERCHANT, key=PAYME_KEY, notify_url="",
                                                   clock=lambda: to_ms(clock.now)))):
        server = TestServer(emulator.app())
        await server.start_server()
        servers.append(server)
        started[name] = (emulator, str(server.make_url("")).rstrip("/"))
    yield started
    for server in servers:
        await server.close()


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str], emulators: dict[str, tuple[Any, str]]) -> Settings:
    cp_url = emulators["cloudpayments"][1]
    return make_settings(
        yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
        **yookassa_settings(emulators["yookassa"][1] + "/v3"),
        cloudpayments_public_id=CP_PUBLIC_ID, cloudpayments_api_secret=CP_SECRET, cloudpayments_api_url=cp_url,
        cloudpayments_widget_url=cp_url + "/widget.js", cloudpayments_test_mode=True,
        payme_merchant_id=PAYME_MERCHANT, payme_key=PAYME_KEY, payme_api_url=emulators["payme"][1] + "/api",
        max_retries=len(RETRIES), retry_intervals=RETRIES,
    )


@pytest.fixture(params=PROVIDERS)
def rig(request: pytest.FixtureRequest, emulators: dict[str, tuple[Any, str]]) -> Rig:
    emulator = emulators[request.param][0]
    return {"yookassa": yookassa_rig, "cloudpayments": cloudpayments_rig, "payme": payme_rig}[request.param](emulator)


@pytest.fixture
def services(worker: InProcessWorker) -> RenewalServices:
    assert worker.runtime.renewals is not None
    return worker.runtime.renewals


async def subscribed(client: TestClient, worker: InProcessWorker, rig: Rig) -> tuple[Subscription, str]:
    token = rig.save()
    return await paid_with_saved_method(client, worker, USER, provider=rig.name, token=token,
                                        method=rig.method), token


async def run_until_settled(clock: FrozenClock, services: RenewalServices, worker: InProcessWorker) -> None:
    await tick(clock(), services)
    await worker.drain()


async def current() -> Subscription:
    subscription = await get_subscription(USER)
    assert subscription is not None
    return subscription


async def test_a_year_of_monthly_renewals_charges_twelve_times_and_never_lapses(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, rig: Rig, services: RenewalServices,
    notifier: RecordingNotifier,
) -> None:
    subscription, _ = await subscribed(client, worker, rig)
    end = subscription.current_period_end
    for month in range(12):
        clock.now = end - services.policy.lead + timedelta(minutes=1)
        await run_until_settled(clock, services, worker)
        await run_until_settled(clock, services, worker)  # a second tick within the hour changes nothing
        renewed = await current()
        assert renewed.current_period_end == end + PERIOD, f"month {month + 1}"
        assert renewed.status is SubscriptionStatus.ACTIVE
        end = renewed.current_period_end
    assert rig.charges() == 12
    assert [renewal.status for renewal in await Renewal.find_all().to_list()] == [RenewalStatus.PAID] * 12
    applied = await Operation.find(Operation.provider == rig.name).to_list()
    assert len(applied) == 12 and {op.status for op in applied} == {OperationStatus.APPLIED}
    assert len(notifier.notices) == 13, "the first payment and each renewal were told once"
    assert notifier.renewals == []


async def test_a_decline_then_success_on_the_second_retry(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, rig: Rig, services: RenewalServices,
    notifier: RecordingNotifier,
) -> None:
    subscription, token = await subscribed(client, worker, rig)
    rig.decline(token, False, 2)
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    await run_until_settled(clock, services, worker)
    assert (await current()).status is SubscriptionStatus.PAST_DUE
    status, body = await get_json(client, f"/api/users/{USER}/subscription")
    assert body["status"] == "past_due" and body["renewal"]["attempts"] == 1
    [renewal] = await Renewal.find_all().to_list()
    assert renewal.next_attempt_at == clock.now + timedelta(seconds=RETRIES[0])

    clock.now = renewal.next_attempt_at - timedelta(seconds=1)
    await run_until_settled(clock, services, worker)
    assert rig.charges() == 1, "nothing before the retry is due"
    clock.now = renewal.next_attempt_at
    await run_until_settled(clock, services, worker)
    [renewal] = await Renewal.find_all().to_list()
    assert rig.charges() == 2 and renewal.next_attempt_at == clock.now + timedelta(seconds=RETRIES[1])
    assert (await current()).status is SubscriptionStatus.PAST_DUE, "access is kept while retries remain"

    clock.now = renewal.next_attempt_at
    await run_until_settled(clock, services, worker)
    renewed = await current()
    assert rig.charges() == 3 and renewed.status is SubscriptionStatus.ACTIVE
    assert renewed.current_period_end == clock.now + PERIOD
    [renewal] = await Renewal.find_all().to_list()
    assert renewal.status is RenewalStatus.PAID and renewal.attempts == 3
    failed = [notice for notice in notifier.renewals if notice.event is RenewalEvent.FAILED]
    assert len(failed) == 2 and all(notice.next_attempt_at and notice.pay_url for notice in failed)


async def test_exhausted_retries_expire_the_subscription_and_tell_user_and_admin(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, rig: Rig, services: RenewalServices,
    notifier: RecordingNotifier,
) -> None:
    subscription, token = await subscribed(client, worker, rig)
    rig.decline(token, False, 0)
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    for _ in range(len(RETRIES) + 1):
        await run_until_settled(clock, services, worker)
        [renewal] = await Renewal.find_all().to_list()
        clock.now = renewal.next_attempt_at if renewal.status is RenewalStatus.DUE else clock.now
    assert rig.charges() == 1 + len(RETRIES)
    [renewal] = await Renewal.find_all().to_list()
    assert renewal.status is RenewalStatus.FAILED and not renewal.hard_decline
    assert (await current()).status is SubscriptionStatus.EXPIRED
    events = [notice.event for notice in notifier.renewals]
    assert events == [RenewalEvent.FAILED] * len(RETRIES) + [RenewalEvent.EXPIRED]
    assert notifier.renewals[-1].pay_url and notifier.renewals[-1].reason
    await run_until_settled(clock, services, worker)
    assert rig.charges() == 1 + len(RETRIES) and len(notifier.renewals) == len(RETRIES) + 1, "nothing more"


async def test_a_hard_decline_skips_the_retries_and_drops_the_method(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, rig: Rig, services: RenewalServices,
    notifier: RecordingNotifier,
) -> None:
    subscription, token = await subscribed(client, worker, rig)
    rig.decline(token, True, 1)
    end = subscription.current_period_end
    clock.now = end - timedelta(minutes=30)
    await run_until_settled(clock, services, worker)
    [renewal] = await Renewal.find_all().to_list()
    assert renewal.status is RenewalStatus.FAILED and renewal.hard_decline and renewal.attempts == 1
    stopped = await current()
    assert stopped.payment_token is None and stopped.status is SubscriptionStatus.ACTIVE, "paid time runs out"
    assert [notice.event for notice in notifier.renewals] == [RenewalEvent.STOPPED]
    clock.now = end + timedelta(seconds=1)
    await run_until_settled(clock, services, worker)
    assert rig.charges() == 1
    assert (await current()).status is SubscriptionStatus.EXPIRED
    assert [notice.event for notice in notifier.renewals] == [RenewalEvent.STOPPED, RenewalEvent.EXPIRED]


@pytest.mark.parametrize("step", ["after_charge", "after_ledger_record"])
async def test_a_crash_between_charge_and_ledger_never_charges_twice(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, rig: Rig, services: RenewalServices,
    step: str,
) -> None:
    subscription, _ = await subscribed(client, worker, rig)
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    worker.runtime.checkpoint = crash_at(step)
    await run_until_settled(clock, services, worker)
    assert rig.charges() == 1
    worker.runtime.checkpoint = lambda reached: None
    await run_until_settled(clock, services, worker)  # the scheduler sends the failed run round again
    assert rig.charges() == 1, "the rerun found the charge by its remembered id / idempotency key"
    renewed = await current()
    assert renewed.current_period_end == subscription.current_period_end + PERIOD
    [renewal] = await Renewal.find_all().to_list()
    assert renewal.status is RenewalStatus.PAID
    assert len(await Operation.find(Operation.provider == rig.name).to_list()) == 1


async def test_turning_auto_renewal_off_stops_the_next_charge(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, rig: Rig, services: RenewalServices,
) -> None:
    subscription, _ = await subscribed(client, worker, rig)
    response = await client.patch(f"/api/users/{USER}/subscription", json={"auto_renew": False},
                                  headers={"Authorization": "Bearer test-admin-token"})
    assert response.status == 200 and (await response.json())["auto_renew"] is False
    await worker.drain()
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    await run_until_settled(clock, services, worker)
    assert rig.charges() == 0 and await Renewal.find_all().to_list() == []
    assert (await current()).payment_token is None, "the saved method is forgotten"
