"""CloudPayments subscriptions (issue 17.3) through the real seam: our app over HTTP, the real RQ worker and
scheduler tick, and the CloudPayments emulator (widget, /subscriptions/*, its own clock, signed notifications)."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest

from billing.ports import RenewalEvent
from billing.providers.base import ChargeStatus
from billing.renewals.cancel import set_auto_renew
from billing.renewals.scheduler import tick
from db import Subscription, SubscriptionStatus
from db.cloudpayments import CloudPaymentsSubscription
from tests.charge_support import Remembered, charger, renewal
from tests.cloudpayments_subscription_support import consented_invoice, pay_in_widget, services_of, subscribed
from tests.cloudpayments_support import (
    CP_PUBLIC_ID,
    CP_SECRET,
    choose_on_page,
    cloudpayments_settings,
    cp,
    cp_server,
    invoice_of,
    open_widget,
)
from tests.conftest import AUTH, YOOMONEY_API_TOKEN
from tests.helpers import new_invoice, operations
from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator
from webhook_server.emulators.cloudpayments_wire import Kind, basic_auth
from webhook_server.keys import QUEUES

__all__ = ["cp", "cp_server"]
DAY = timedelta(days=1)


@pytest.fixture
def settings(yoomoney_emulator, cp_server):  # type: ignore[no-untyped-def]
    return cloudpayments_settings(cp_server[1], yoomoney_api_token=YOOMONEY_API_TOKEN,
                                  yoomoney_api_url=yoomoney_emulator[1], cloudpayments_recurrent_plans=["month"])


def codes(cp: CloudPaymentsEmulator, kind: Kind) -> list[int | None]:
    return [reply.code for sent, reply in cp.replies if sent is kind]


async def local(user_id: int) -> Subscription:
    found = await Subscription.find_one(Subscription.user_id == user_id)
    assert found is not None
    return found


async def test_only_a_consented_payment_sets_up_a_subscription(client, cp, clock):
    once = await consented_invoice(client, 61, clock, consent=False)
    assert "CloudPayments" not in (await open_widget(client, once))["options"]["data"]
    other = await consented_invoice(client, 61, clock, provider="yookassa")
    assert "CloudPayments" not in (await open_widget(client, other))["options"]["data"]
    consented = await consented_invoice(client, 61, clock)
    options = (await open_widget(client, consented))["options"]
    assert options["data"]["CloudPayments"] == {"recurrent": {"interval": "Day", "period": 30}}
    await pay_in_widget(client, cp, once)
    assert cp.subscriptions == {}


async def test_the_pages_choice_decides_whether_the_widget_sets_up_a_subscription(client, cp, worker, clock):
    once = await new_invoice(client, user_id=60)
    assert "CloudPayments" not in (await choose_on_page(client, once, "pay-cloudpayments"))["options"]["data"]
    renew = await new_invoice(client, user_id=60)
    config = await choose_on_page(client, renew, "renew-cloudpayments")  # "pay and renew automatically"
    assert config["options"]["data"]["CloudPayments"] == {"recurrent": {"interval": "Day", "period": 30}}
    consent = (await invoice_of(renew["label"])).auto_renew_consent
    assert consent is not None and consent.provider == "cloudpayments"
    cp.clock = clock
    paid = await cp.pay_widget(config["options"], config["scheme"])
    await worker.drain()
    await tick(clock(), services_of(client, clock))
    assert (await local(60)).cloudpayments_subscription_id == cp.transactions[paid["transactionId"]].subscription_id


async def test_a_subscription_renews_on_cloudpayments_clock_without_reminder_or_expiry(client, cp, worker, clock,
                                                                                      notifier):
    sub = await subscribed(client, cp, worker, clock, 62)
    assert (sub.local.auto_renew, sub.local.payment_token) == (True, None)
    end = sub.local.current_period_end
    services = services_of(client, clock)
    clock.now = end - DAY
    assert (await tick(clock(), services)).reminded == 0  # no "ends on ... pay here"
    clock.now = end + timedelta(minutes=1)  # CloudPayments charges a little after our period's end
    assert (await tick(clock(), services)).expired == 0
    assert (await local(62)).status is SubscriptionStatus.ACTIVE
    await worker.drain()
    [notice] = notifier.renewals  # the notice before CloudPayments' charge (RENEWAL_NOTICE_DAYS), no pay link
    assert (notice.event, notice.pay_url, notice.period_end) == (RenewalEvent.UPCOMING, None, end)

    [renewal_tx] = await cp.run_schedule()
    assert codes(cp, Kind.CHECK)[-1] == 0 and codes(cp, Kind.PAY)[-1] == 0
    assert await cp.run_schedule() == []  # once per due date
    await worker.drain()
    renewed = await local(62)
    assert renewed.current_period_end == clock.now + timedelta(days=30)
    assert sorted(op.operation_id for op in await operations()) == sorted([str(sub.first_transaction),
                                                                          str(renewal_tx)])
    row = await CloudPaymentsSubscription.by_id(sub.subscription_id)
    assert row is not None and row.transactions == [str(renewal_tx)]


async def test_turning_auto_renewal_off_cancels_it_and_a_later_check_is_refused(client, cp, worker, clock):
    sub = await subscribed(client, cp, worker, clock, 63)
    await set_auto_renew(63, False, queue=client.app[QUEUES], now=clock())
    await worker.drain()  # the cancellation job: /subscriptions/cancel
    assert cp.subscriptions[sub.subscription_id].status == "Cancelled"
    assert [path for path, _, _ in cp.api_calls] == ["/subscriptions/cancel"]
    stored = await local(63)
    assert (stored.cloudpayments_subscription_id, stored.auto_renew) == (None, False)

    cp.subscriptions[sub.subscription_id].status = "Active"  # as if someone turned it on again at CloudPayments
    clock.now = stored.current_period_end + timedelta(minutes=1)
    assert await cp.run_schedule() == []
    assert codes(cp, Kind.CHECK)[-1] == 13 and len(await operations()) == 1


async def test_the_admin_api_turns_it_off_and_an_outage_is_retried_by_the_scheduler(client, cp, worker, clock):
    sub = await subscribed(client, cp, worker, clock, 64)
    cp.down = True
    response = await client.patch("/api/users/64/subscription", json={"auto_renew": False}, headers=AUTH)
    assert response.status == 200, await response.text()
    await worker.drain()  # CloudPayments answers 503: the job fails
    assert cp.subscriptions[sub.subscription_id].status == "Active"
    cp.down = False
    await tick(clock(), services_of(client, clock))  # the cancellation is queued again
    await worker.drain()
    assert cp.subscriptions[sub.subscription_id].status == "Cancelled"
    row = await CloudPaymentsSubscription.by_id(sub.subscription_id)
    assert row is not None and row.status == "Cancelled" and row.stop_reason == "auto-renewal turned off"


async def test_a_refund_through_the_admin_api_cancels_the_subscription(client, cp, worker, clock):
    sub = await subscribed(client, cp, worker, clock, 65)
    response = await client.post(f"/api/invoices/{sub.label}/refund", headers=AUTH)
    assert response.status == 202, await response.text()
    await worker.drain()
    assert cp.subscriptions[sub.subscription_id].status == "Cancelled"
    assert (await local(65)).cloudpayments_subscription_id is None


async def test_a_refund_made_in_the_cabinet_cancels_it_through_the_refund_notification(client, cp, cp_server, worker,
                                                                                      clock):
    sub = await subscribed(client, cp, worker, clock, 66)
    async with aiohttp.ClientSession() as session:  # the merchant refunds in CloudPayments' cabinet
        async with session.post(f"{cp_server[1]}/payments/refund", headers=api_auth(),
                                data={"TransactionId": str(sub.first_transaction), "Amount": "299.00"}) as answer:
            assert (await answer.json())["Success"] is True
    assert codes(cp, Kind.REFUND)[-1] == 0
    await worker.drain()  # the reversal, and the cancellation
    assert cp.subscriptions[sub.subscription_id].status == "Cancelled"
    row = await CloudPaymentsSubscription.by_id(sub.subscription_id)
    assert row is not None and row.stop_reason == "CloudPayments: payment refunded"


@pytest.mark.parametrize(("status", "event"), [("Rejected", RenewalEvent.STOPPED),
                                               ("Cancelled", RenewalEvent.REMINDER),
                                               ("Expired", RenewalEvent.REMINDER)])
async def test_cloudpayments_ending_it_unbinds_and_tells_the_user(client, cp, worker, clock, notifier, status,
                                                                  event):
    sub = await subscribed(client, cp, worker, clock, 67)
    emulated = cp.subscriptions[sub.subscription_id]
    emulated.status = status  # ended at CloudPayments (declines, the payer's cabinet, MaxPeriods)
    assert (await cp.desk.send(Kind.RECURRENT, cp.desk.recurrent(emulated))).ok
    assert (await cp.desk.send(Kind.RECURRENT, cp.desk.recurrent(emulated))).ok  # a redelivery
    await worker.drain()
    [notice] = notifier.renewals
    assert (notice.event, notice.user_id, notice.pay_url is not None) == (event, 67, True)
    stored = await local(67)
    assert (stored.cloudpayments_subscription_id, stored.auto_renew) == (None, False)
    clock.now = stored.current_period_end - DAY
    assert (await tick(clock(), services_of(client, clock))).reminded == 0  # told once
    clock.now = stored.current_period_end + timedelta(minutes=1)
    assert (await tick(clock(), services_of(client, clock))).expired == 1  # it ends like any other


async def test_three_declined_charges_reject_it_and_the_user_is_told(client, cp, worker, clock, notifier):
    sub = await subscribed(client, cp, worker, clock, 68)
    cp.decline_token(cp.subscriptions[sub.subscription_id].token)
    clock.now = sub.local.current_period_end
    for _ in range(3):
        assert await cp.run_schedule() == []
        clock.now += DAY
    assert cp.subscriptions[sub.subscription_id].status == "Rejected"
    assert codes(cp, Kind.FAIL) == [0, 0, 0] and codes(cp, Kind.RECURRENT)[-1] == 0
    await worker.drain()
    assert (await local(68)).cloudpayments_subscription_id is None
    assert (await tick(clock(), services_of(client, clock))).expired == 1
    await worker.drain()
    assert [notice.event for notice in notifier.renewals] == [RenewalEvent.EXPIRED]


async def test_an_unanswered_pay_is_sent_again_on_cloudpayments_schedule(client, cp, worker, clock):
    sub = await subscribed(client, cp, worker, clock, 69)
    clock.now = sub.local.current_period_end
    cp.drop_notifications(Kind.PAY)
    [renewal_tx] = await cp.run_schedule()
    cp.drop_notifications()  # nothing lost any more
    cp.drop = set()
    assert len(cp.desk.retries) == 1 and await cp.run_schedule() == []
    clock.now += timedelta(hours=1)
    await cp.run_schedule()
    assert cp.desk.retries == [] and codes(cp, Kind.PAY)[-1] == 0
    await worker.drain()
    assert str(renewal_tx) in [op.operation_id for op in await operations()]


async def test_a_subscription_without_consent_is_cancelled_at_once(client, cp, worker, clock):
    cp.clock = clock
    invoice = await new_invoice(client, user_id=70)  # no choice recorded, but the widget made a subscription
    paid = await cp.pay_widget({"publicId": CP_PUBLIC_ID, "amount": "299.00", "currency": "RUB",
                                "invoiceId": invoice["label"], "accountId": "70",
                                "data": {"CloudPayments": {"recurrent": {"interval": "Day", "period": 30}}}})
    await worker.drain()
    await tick(clock(), services_of(client, clock))
    await worker.drain()
    subscription_id = cp.transactions[paid["transactionId"]].subscription_id
    assert cp.subscriptions[subscription_id].status == "Cancelled"
    assert (await local(70)).cloudpayments_subscription_id is None


async def test_a_refused_token_charge_without_a_model_is_a_hard_decline(client, cp):
    invoice = await new_invoice(client, user_id=71)
    cp.tokens.add("tk_saved")
    cp.token_payments = False
    result = await charger(client, "cloudpayments").charge(renewal(invoice["label"], "tk_saved", user_id=71),
                                                           Remembered())
    assert (result.status, result.hard, result.operation_id) == (ChargeStatus.DECLINED, True, None)
    assert result.reason == "Token payments are not enabled for this site" and cp.charges == []


async def test_the_emulators_subscription_api(client, cp, cp_server):
    cp.tokens.add("tk_api")
    start = "2030-01-31T10:00:00"
    async with aiohttp.ClientSession() as session:
        async def call(path: str, **fields: str) -> dict:
            async with session.post(f"{cp_server[1]}{path}", data=fields, headers=api_auth()) as answer:
                assert answer.status == 200
                return await answer.json()

        created = await call("/subscriptions/create", Token="tk_api", AccountId="72", Description="Month",
                             Amount="299.00", Currency="RUB", RequireConfirmation="false", StartDate=start,
                             Interval="Month", Period="1")
        model = created["Model"]
        assert created["Success"] and model["Status"] == "Active" and model["NextTransactionDateIso"] == start
        assert (await call("/subscriptions/get", Id=model["Id"]))["Model"]["Amount"] == 299.0
        assert [m["Id"] for m in (await call("/subscriptions/find", AccountId="72"))["Model"]] == [model["Id"]]
        assert (await call("/subscriptions/cancel", Id=model["Id"]))["Success"] is True
        assert (await call("/subscriptions/cancel", Id=model["Id"]))["Success"] is False
        updated = await call("/subscriptions/update", Id=model["Id"], Amount="399.00")
        assert updated["Model"]["Status"] == "Active" and updated["Model"]["Amount"] == 399.0
        for bad in ({"Token": "tk_unknown"}, {"Interval": "Year"}, {"Amount": "-1"}):
            fields = {"Token": "tk_api", "AccountId": "72", "Description": "x", "Amount": "1.00", "Currency": "RUB",
                      "RequireConfirmation": "false", "StartDate": start, "Interval": "Day", "Period": "1", **bad}
            assert (await call("/subscriptions/create", **fields))["Success"] is False
        assert (await call("/subscriptions/get", Id="sc_nope"))["Success"] is False
        async with session.post(f"{cp_server[1]}/subscriptions/get", data={"Id": model["Id"]}) as answer:
            assert answer.status == 401


async def test_void_is_only_for_two_stage_payments(client, cp, cp_server):
    invoice = await new_invoice(client, user_id=73)
    paid = await cp.pay_widget({"publicId": CP_PUBLIC_ID, "amount": "299.00", "currency": "RUB",
                                "invoiceId": invoice["label"], "accountId": "73"})
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{cp_server[1]}/payments/void", headers=api_auth(),
                                data={"TransactionId": str(paid["transactionId"])}) as answer:
            body = await answer.json()
    assert (body["Success"], body["Model"]) == (False, None)
    assert cp.transactions[paid["transactionId"]].status == "Completed"


def api_auth() -> dict[str, str]:
    return {"Authorization": basic_auth(CP_PUBLIC_ID, CP_SECRET)}
