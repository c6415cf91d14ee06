"""Each event from the real path that makes its change: renewals charged and declined at YooKassa's emulator,
expiry by the scheduler's tick, auto-renewal turned off through the admin API, refunds through the admin API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from billing.events import outlet as events_outlet
from billing.renewals import RenewalServices
from billing.renewals.scheduler import tick
from db import Subscription, SubscriptionStatus
from db.renewals import Renewal
from settings import Settings
from tests.conftest import AUTH, YOOMONEY_API_TOKEN, make_settings
from tests.events.conftest import events_settings
from tests.events.receiver import EventReceiver
from tests.helpers import new_invoice, notification, paid_with_saved_method, post_notification as post_yoomoney
from tests.renewals.rigs import Rig, yookassa_rig
from tests.yookassa_support import paid_payment, post_notification, yookassa, yookassa_emulator, yookassa_settings
from webhook_server.runner import InProcessWorker

__all__ = ["yookassa", "yookassa_emulator"]  # fixtures, imported for pytest

USER = 7301
RENEWAL_RETRIES = [3600]


@pytest.fixture
def settings(yoomoney_emulator: tuple[Any, str], yookassa_emulator: tuple[Any, str],
             receiver_server: tuple[EventReceiver, TestServer]) -> Settings:
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
                         **yookassa_settings(yookassa_emulator[1] + "/v3"), **events_settings(receiver_server),
                         max_retries=len(RENEWAL_RETRIES), retry_intervals=RENEWAL_RETRIES)


@pytest.fixture
def rig(yookassa_emulator: tuple[Any, str]) -> Rig:
    return yookassa_rig(yookassa_emulator[0])


@pytest.fixture
def services(worker: InProcessWorker) -> RenewalServices:
    assert worker.runtime.renewals is not None
    return worker.runtime.renewals


def of_type(receiver: EventReceiver, type_: str) -> list[dict[str, Any]]:
    return [event for event in receiver.accepted() if event["type"] == type_]


async def settle(clock: Any, services: RenewalServices, worker: InProcessWorker) -> None:
    await tick(clock(), services)
    await worker.drain()


async def test_a_renewal_charge_sends_payment_succeeded_and_subscription_renewed(client, worker, clock, rig,
                                                                                 services, receiver):
    subscription = await paid_with_saved_method(client, worker, USER, provider="yookassa", token=rig.save(),
                                                method=rig.method)
    end = subscription.current_period_end
    assert [event["type"] for event in receiver.accepted()] == ["payment.succeeded", "subscription.activated"]

    clock.now = end - services.policy.lead + timedelta(minutes=1)
    await settle(clock, services, worker)
    await settle(clock, services, worker)  # a second tick changes nothing

    [renewed] = of_type(receiver, "subscription.renewed")
    assert renewed["data"]["user_id"] == USER and renewed["data"]["provider"] == "yookassa"
    assert renewed["data"]["current_period_end"] == (end + timedelta(days=30)).isoformat()
    payments = of_type(receiver, "payment.succeeded")
    assert len(payments) == 2 and payments[1]["data"]["operation_id"] == renewed["data"]["operation_id"]
    assert len(of_type(receiver, "subscription.activated")) == 1


async def test_a_declined_renewal_is_past_due_then_expired_when_the_retries_end(client, worker, clock, rig,
                                                                                services, receiver):
    token = rig.save()
    subscription = await paid_with_saved_method(client, worker, USER, provider="yookassa", token=token,
                                                method=rig.method)
    rig.decline(token, False, 5)
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    await settle(clock, services, worker)

    [past_due] = of_type(receiver, "subscription.past_due")
    assert past_due["data"] | {"reason": ""} == {
        "user_id": USER, "plan": "month", "period_end": subscription.current_period_end.isoformat(),
        "provider": "yookassa", "attempt": 1, "reason": "",
        "next_attempt_at": (clock.now + timedelta(seconds=RENEWAL_RETRIES[0])).isoformat()}
    assert past_due["data"]["reason"], "the provider's decline reason"
    assert of_type(receiver, "subscription.expired") == []

    clock.now += timedelta(seconds=RENEWAL_RETRIES[0])
    await settle(clock, services, worker)
    await settle(clock, services, worker)
    [expired] = of_type(receiver, "subscription.expired")
    assert expired["data"] == {"user_id": USER, "plan": "month",
                               "period_end": subscription.current_period_end.isoformat()}
    assert len(of_type(receiver, "subscription.past_due")) == 1, "the last decline ends it instead"


async def test_a_period_with_nothing_to_renew_it_expires_once(client, worker, clock, services, receiver):
    invoice = await new_invoice(client, user_id=USER)
    assert await post_yoomoney(client, notification(invoice["label"])) == 200
    await worker.drain()
    end = clock.now + timedelta(days=30)
    clock.now = end + timedelta(minutes=1)
    await settle(clock, services, worker)
    await settle(clock, services, worker)
    assert [event["data"] for event in of_type(receiver, "subscription.expired")] == [
        {"user_id": USER, "plan": "month", "period_end": end.isoformat()}]


async def test_turning_auto_renewal_off_sends_subscription_canceled_once(client: TestClient, worker, clock, rig,
                                                                         receiver):
    subscription = await paid_with_saved_method(client, worker, USER, provider="yookassa", token=rig.save(),
                                                method=rig.method)
    for _ in range(2):
        response = await client.patch(f"/api/users/{USER}/subscription", json={"auto_renew": False}, headers=AUTH)
        assert response.status == 200, await response.text()
        await worker.drain()
    [canceled] = of_type(receiver, "subscription.canceled")
    assert canceled["data"] == {"user_id": USER, "plan": "month", "auto_renew": False, "reason": "auto_renew_off",
                                "current_period_end": subscription.current_period_end.isoformat()}


async def paid_at_yookassa(client: TestClient, worker: InProcessWorker, emulator: Any) -> tuple[str, str]:
    invoice = await new_invoice(client, user_id=USER)
    payment_id = paid_payment(emulator, invoice["label"])
    assert await post_notification(client, emulator.notification("payment.succeeded", payment_id)) == 200
    await worker.drain()
    return invoice["label"], payment_id


async def test_a_full_refund_sends_payment_refunded_once(client, worker, yookassa, receiver):
    label, payment_id = await paid_at_yookassa(client, worker, yookassa)
    assert (await client.post(f"/api/invoices/{label}/refund", headers=AUTH)).status == 202
    await yookassa.settle()  # YooKassa's refund.succeeded reaches us as well
    await worker.drain()
    [refunded] = of_type(receiver, "payment.refunded")
    assert refunded["data"] | {"metadata": None} == {
        "invoice": label, "kind": "plan", "user_id": USER, "plan": "month", "order_id": None, "metadata": None,
        "provider": "yookassa", "operation_id": payment_id, "amount": 29900, "currency": "RUB", "full": True,
        "refunded_total": 29900}


async def test_partial_refunds_send_their_parts_then_the_full_refund(client, worker, yookassa, receiver):
    label, _ = await paid_at_yookassa(client, worker, yookassa)
    for amount in (10000, 19900):
        response = await client.post(f"/api/invoices/{label}/refund", json={"amount": amount}, headers=AUTH)
        assert response.status == 202, await response.text()
        await worker.drain()
    await yookassa.settle()
    await worker.drain()
    refunds = [(e["data"]["amount"], e["data"]["full"], e["data"]["refunded_total"])
               for e in of_type(receiver, "payment.refunded")]
    assert refunds == [(10000, False, 10000), (19900, False, 29900), (29900, True, 29900)]


async def test_a_decline_whose_event_a_crash_kept_from_the_record_is_recorded_by_the_next_tick(
        client, worker, clock, rig, services, receiver):
    token = rig.save()
    subscription = await paid_with_saved_method(client, worker, USER, provider="yookassa", token=token,
                                                method=rig.method)
    rig.decline(token, False, 5)
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    outlet = events_outlet.installed()
    events_outlet.uninstall()  # the job stops between the decline's write and its event, as a crash would
    await settle(clock, services, worker)
    events_outlet.install(outlet)
    assert of_type(receiver, "subscription.past_due") == []
    # the crash came before the notice's enqueue as well: the decline's write left it pending, as it does
    await Renewal.get_motor_collection().update_many({}, {"$set": {"notice_pending": True}})
    await settle(clock, services, worker)
    await settle(clock, services, worker)
    [past_due] = of_type(receiver, "subscription.past_due")
    assert past_due["data"]["attempt"] == 1 and past_due["data"]["provider"] == "yookassa"


async def test_a_hard_decline_before_the_period_ends_sends_subscription_canceled(client, worker, clock, rig,
                                                                                 services, receiver):
    token = rig.save()
    subscription = await paid_with_saved_method(client, worker, USER, provider="yookassa", token=token,
                                                method=rig.method)
    rig.decline(token, True, 1)  # the card expired: no retry, the period runs to its end
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    await settle(clock, services, worker)
    [canceled] = of_type(receiver, "subscription.canceled")
    assert canceled["data"]["reason"].startswith("renewal_failed: ") and canceled["data"]["auto_renew"] is False
    assert canceled["data"]["current_period_end"] == subscription.current_period_end.isoformat()
    assert of_type(receiver, "subscription.past_due") == [] and of_type(receiver, "subscription.expired") == []

    clock.now = subscription.current_period_end + timedelta(minutes=1)
    await settle(clock, services, worker)
    [expired] = of_type(receiver, "subscription.expired")
    assert expired["data"]["period_end"] == subscription.current_period_end.isoformat()


async def test_an_expiry_whose_event_a_crash_kept_from_the_record_is_recorded_by_the_next_tick(
        client, worker, clock, services, receiver):
    invoice = await new_invoice(client, user_id=USER)
    assert await post_yoomoney(client, notification(invoice["label"])) == 200
    await worker.drain()
    end = clock.now + timedelta(days=30)
    clock.now = end + timedelta(minutes=1)
    outlet = events_outlet.installed()
    events_outlet.uninstall()  # the tick stops between the mark and its event, as a crash would
    await settle(clock, services, worker)
    events_outlet.install(outlet)
    assert (await Subscription.find_one(Subscription.user_id == USER)).status is SubscriptionStatus.EXPIRED
    assert of_type(receiver, "subscription.expired") == []

    clock.now += timedelta(minutes=1)
    await settle(clock, services, worker)
    await settle(clock, services, worker)
    assert [e["data"]["period_end"] for e in of_type(receiver, "subscription.expired")] == [end.isoformat()]


async def test_a_refund_that_ends_the_subscription_is_payment_refunded_not_expired(client, worker, clock, services,
                                                                                   receiver, queues):
    invoice = await new_invoice(client, user_id=USER)
    assert await post_yoomoney(client, notification(invoice["label"], operation_id="op-refund")) == 200
    await worker.drain()
    clock.now += timedelta(days=3)
    await queues.enqueue_reversal("yoomoney", "op-refund", "refunded by the provider")
    await worker.drain()
    assert (await Subscription.find_one(Subscription.user_id == USER)).status is SubscriptionStatus.EXPIRED
    await settle(clock, services, worker)
    assert [e["type"] for e in receiver.accepted()] == ["payment.succeeded", "subscription.activated",
                                                         "payment.refunded"]


async def test_a_cancel_whose_event_a_crash_kept_from_the_record_is_recorded_by_the_next_tick(
        client: TestClient, worker, clock, rig, services, receiver):
    subscription = await paid_with_saved_method(client, worker, USER, provider="yookassa", token=rig.save(),
                                                method=rig.method)
    # set_auto_renew's write, and then a crash before its event and before the saved method's deletion was queued
    await Subscription.get_motor_collection().update_one(
        {"user_id": USER}, {"$set": {"auto_renew": False, "renewal_consent": None, "updated_at": clock.now}})
    assert of_type(receiver, "subscription.canceled") == []

    await settle(clock, services, worker)
    await settle(clock, services, worker)
    [canceled] = of_type(receiver, "subscription.canceled")
    assert canceled["data"]["current_period_end"] == subscription.current_period_end.isoformat()
