"""Subscriptions nothing renews automatically (YooMoney): a reminder with a fresh link before the end, once,
and the end itself with another link; the scheduler's lease lets one instance work at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import redis
from aiohttp.test_utils import TestClient

from billing.ports import RenewalEvent
from billing.renewals.scheduler import run_scheduler, tick
from db import Subscription, SubscriptionStatus
from rq_access import RedisLease
from tests.conftest import AUTH, FrozenClock, RecordingNotifier
from tests.helpers import get_json, new_invoice, notification, path_of, post_notification
from webhook_server.keys import PROVIDERS, QUEUES, SETTINGS
from webhook_server.renewal_services import renewal_services
from webhook_server.runner import InProcessWorker

USER = 4242


async def paid_subscription(client: TestClient, worker: InProcessWorker) -> Subscription:
    invoice = await new_invoice(client, user_id=USER)
    assert await post_notification(client, notification(invoice["label"])) == 200
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == USER)
    assert subscription is not None
    return subscription


def services_of(client: TestClient, clock: FrozenClock):  # type: ignore[no-untyped-def]
    app = client.app
    return renewal_services(app[SETTINGS], app[QUEUES], app[PROVIDERS], clock)


async def test_reminder_goes_out_once_days_before_the_end_with_a_working_link(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, notifier: RecordingNotifier,
) -> None:
    subscription = await paid_subscription(client, worker)
    services = services_of(client, clock)
    clock.now = subscription.current_period_end - timedelta(days=services.policy.reminder_days + 1)
    assert (await tick(clock(), services)).reminded == 0
    clock.now = subscription.current_period_end - timedelta(days=services.policy.reminder_days) + timedelta(hours=1)
    assert (await tick(clock(), services)).reminded == 1
    assert (await tick(clock(), services)).reminded == 0  # once per period, however many ticks
    await worker.drain()
    [reminder] = notifier.renewals
    assert reminder.event is RenewalEvent.REMINDER and reminder.user_id == USER
    assert reminder.pay_url is not None
    page = await client.get(path_of(reminder.pay_url))
    assert page.status == 200, "the reminder's link opens a payable page"


async def test_the_end_expires_the_subscription_and_tells_the_user_with_a_link(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, notifier: RecordingNotifier,
) -> None:
    subscription = await paid_subscription(client, worker)
    services = services_of(client, clock)
    clock.now = subscription.current_period_end - timedelta(seconds=1)
    assert (await tick(clock(), services)).expired == 0
    clock.now = subscription.current_period_end + timedelta(seconds=1)
    assert (await tick(clock(), services)).expired == 1
    assert (await tick(clock(), services)).expired == 0
    await worker.drain()
    stored = await Subscription.find_one(Subscription.user_id == USER)
    assert stored is not None and stored.status is SubscriptionStatus.EXPIRED
    expired = [notice for notice in notifier.renewals if notice.event is RenewalEvent.EXPIRED]
    assert len(expired) == 1 and expired[0].pay_url
    status, body = await get_json(client, f"/api/users/{USER}/subscription")
    assert status == 200 and body["status"] == "expired" and body["auto_renew"] is False


async def test_paying_again_after_expiry_makes_it_active_again(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, notifier: RecordingNotifier,
) -> None:
    subscription = await paid_subscription(client, worker)
    services = services_of(client, clock)
    clock.now = subscription.current_period_end + timedelta(days=2)
    await tick(clock(), services)
    await worker.drain()
    [expired] = [notice for notice in notifier.renewals if notice.event is RenewalEvent.EXPIRED]
    page = await client.get(path_of(expired.pay_url or ""))
    assert page.status == 200
    label = expired.pay_url.split("/pay/")[1].split("?")[0] if expired.pay_url else ""
    assert await post_notification(client, notification(label)) == 200
    await worker.drain()
    status, body = await get_json(client, f"/api/users/{USER}/subscription")
    assert body["status"] == "active"
    assert body["current_period_end"] == (clock.now + timedelta(days=30)).isoformat()


async def test_only_one_of_two_schedulers_holds_the_lease(redis_conn: redis.Redis) -> None:
    first = RedisLease(redis_conn, ttl_seconds=30)
    second = RedisLease(redis_conn, ttl_seconds=30)
    assert first.hold() is True
    assert second.hold() is False
    assert first.hold() is True, "the holder keeps it (its expiry renewed)"
    first.release()
    assert second.hold() is True, "the standby takes over once it is free"


async def test_a_dead_holders_lease_expires_and_the_standby_takes_over(redis_conn: redis.Redis) -> None:
    first = RedisLease(redis_conn, ttl_seconds=30)
    second = RedisLease(redis_conn, ttl_seconds=30)
    assert first.hold()
    redis_conn.pexpire("ymds:renewal-scheduler", 1)  # the holder died; its lease runs out
    deadline = asyncio.get_running_loop().time() + 5
    while redis_conn.exists("ymds:renewal-scheduler") and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert second.hold() is True
    assert first.hold() is False, "the old holder does not win it back while the new one holds it"


async def test_two_scheduler_loops_at_once_tick_from_one_only(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, redis_conn: redis.Redis,
) -> None:
    services = services_of(client, clock)
    ticks: list[str] = []

    class CountingLease(RedisLease):
        def __init__(self, name: str) -> None:
            super().__init__(redis_conn, ttl_seconds=30)
            self.name = name

        def hold(self) -> bool:
            held = super().hold()
            if held:
                ticks.append(self.name)
            return held

    stop = asyncio.Event()
    loops = [asyncio.create_task(run_scheduler(services, CountingLease(name), clock, interval=0.01, stop=stop))
             for name in ("a", "b")]
    deadline = asyncio.get_running_loop().time() + 10
    while len(ticks) < 10 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*loops)
    assert len(ticks) >= 10
    assert len(set(ticks)) == 1, f"both instances ticked: {ticks}"
    assert not redis_conn.exists("ymds:renewal-scheduler"), "the holder releases the lease when it stops"


async def test_admin_api_cannot_turn_auto_renewal_on_without_a_saved_method(
    client: TestClient, worker: InProcessWorker,
) -> None:
    await paid_subscription(client, worker)
    response = await client.patch(f"/api/users/{USER}/subscription", json={"auto_renew": True}, headers=AUTH)
    assert response.status == 409 and (await response.json())["error"] == "no_saved_method"
    for bad in ({"auto_renew": "yes"}, {"auto_renew": False, "plan": "year"}, {}, []):
        response = await client.patch(f"/api/users/{USER}/subscription", json=bad, headers=AUTH)
        assert response.status == 400, bad
    response = await client.patch(f"/api/users/{USER}/subscription", data=b"{", headers=AUTH)
    assert response.status == 400
    response = await client.patch("/api/users/777/subscription", json={"auto_renew": False}, headers=AUTH)
    assert response.status == 404
    response = await client.patch(f"/api/users/{USER}/subscription", json={"auto_renew": False})
    assert response.status == 401
