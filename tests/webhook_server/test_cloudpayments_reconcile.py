"""The CloudPayments reconciliation: every notification lost, the payment is found through /payments/find for an
invoice whose widget was opened, recorded under its TransactionId, and the late Pay is a duplicate."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.errors import ProviderUnavailable
from billing.providers.base import Outcome
from billing.providers.cloudpayments.protocol import Kind, basic_auth
from billing.sweep import sweep_once
from db import InvoiceStatus, OperationStatus, Subscription
from db.cloudpayments import CloudPaymentsSubscription
from tests.cloudpayments_support import (  # noqa: F401 - fixtures
    CP_PUBLIC_ID,
    CP_SECRET,
    cp,
    cp_server,
    give_consent,
    invoice_of,
    open_widget,
    pay_fields,
    post,
    reconfigure,
    settings,
)
from tests.helpers import new_invoice, operations
from webhook_server.keys import LEDGER, PROVIDERS

WINDOW = timedelta(hours=1)


def provider(client):
    return client.app[PROVIDERS].get("cloudpayments")


async def reconcile(client, clock):
    """A minute later, one sweep over the last hour, as `ymds scheduler` runs it."""
    clock.now += timedelta(minutes=1)
    [report] = await sweep_once([provider(client)], client.app[LEDGER], start=clock.now - WINDOW, end=clock.now,
                                now=clock.now)
    return report


def finds(cp) -> list[str]:
    return [fields["InvoiceId"] for path, fields, _ in cp.api_calls if path == "/payments/find"]


@pytest.mark.parametrize("lost", ["every notification, on a terminal without Check", "Pay and Recurrent"])
async def test_a_payment_whose_notifications_are_all_lost_is_found_and_applied_once(lost, client, cp, worker, clock,
                                                                                     notifier):
    reconfigure(client, recurrent_plans=["month"])
    invoice = await new_invoice(client, user_id=201)
    await give_consent(invoice["label"], clock())
    config = await open_widget(client, invoice)
    if lost.startswith("every"):
        cp.skip_check = True
        cp.drop_notifications()
    else:
        cp.drop_notifications(Kind.PAY, Kind.RECURRENT)
    clock.now += timedelta(minutes=5)
    paid = await cp.pay_widget(config["options"], config["scheme"])
    assert paid["success"] and cp.dropped
    await worker.drain()
    assert await operations() == [] and (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING

    report = await reconcile(client, clock)
    assert (report.asked, report.found, report.recorded) == (1, 1, 1) and finds(cp) == [invoice["label"]]
    await worker.drain()
    [operation] = await operations()
    assert (operation.operation_id, operation.status) == (str(paid["transactionId"]), OperationStatus.APPLIED)
    assert (operation.payment_method, operation.payment_token) == ("Visa •••• 4242", None), \
        "as after a Pay: CloudPayments charges its own subscription, we never charge the token"
    paid_invoice = await invoice_of(invoice["label"])
    assert (paid_invoice.status, paid_invoice.provider) == (InvoiceStatus.PAID, "cloudpayments")
    subscription = await Subscription.find_one(Subscription.user_id == 201)
    period_end = subscription.current_period_end
    assert period_end == clock.now + timedelta(days=30)
    [cp_subscription] = await CloudPaymentsSubscription.find_all().to_list()
    assert cp_subscription.label == invoice["label"], "its renewals will be known, as after a Pay"

    late = await cp.redeliver_dropped()
    assert late and all(reply.ok for reply in late), "the late Pay is answered as a duplicate"
    await worker.drain()
    assert len(await operations()) == 1 and len(notifier.notices) == 1
    assert (await Subscription.find_one(Subscription.user_id == 201)).current_period_end == period_end
    again = await reconcile(client, clock)
    assert (again.asked, again.found) == (0, 0), "a paid invoice is not asked about again"


async def test_a_late_pay_that_arrives_first_makes_the_reconciliation_a_duplicate(client, cp, worker, clock):
    invoice = await new_invoice(client, user_id=202)
    config = await open_widget(client, invoice)
    cp.drop_notifications(Kind.PAY)
    paid = await cp.pay_widget(config["options"], config["scheme"])
    await cp.redeliver_dropped()  # the Pay arrives; no worker has run, so the invoice is still pending
    report = await reconcile(client, clock)
    assert (report.found, report.recorded) == (1, 0) and report.lines[0].endswith(Outcome.DUPLICATE.value)
    await worker.drain()
    [operation] = await operations()
    assert operation.operation_id == str(paid["transactionId"]) and operation.status is OperationStatus.APPLIED


async def test_only_invoices_whose_widget_was_opened_in_the_window_are_asked_about(client, cp, clock):
    opened_long_ago = await new_invoice(client, user_id=203)
    await open_widget(client, opened_long_ago)
    clock.now += timedelta(hours=3)
    never_opened = await new_invoice(client, user_id=204)
    opened_now = await new_invoice(client, user_id=205)
    await open_widget(client, opened_now)
    report = await reconcile(client, clock)
    assert finds(cp) == [opened_now["label"]] and never_opened["label"] not in finds(cp)
    assert (report.asked, report.found, report.recorded) == (1, 0, 0), "nothing was paid"


async def test_an_authorized_payment_is_recorded_as_held(client, cp, worker, clock):
    reconfigure(client, two_stage=True)
    invoice = await new_invoice(client, user_id=206)
    config = await open_widget(client, invoice)
    assert config["scheme"] == "auth"
    cp.drop_notifications(Kind.PAY)
    paid = await cp.pay_widget(config["options"], config["scheme"])
    report = await reconcile(client, clock)
    assert report.found == 1
    await worker.drain()
    [operation] = await operations()
    assert (operation.operation_id, operation.status) == (str(paid["transactionId"]), OperationStatus.HELD)
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING
    assert await post(client, Kind.CHECK, pay_fields(invoice["label"], 206, pay=False)) == (200, {"code": 13}), \
        "the hold claims the invoice"


async def test_a_payment_refunded_before_we_learnt_of_it_is_not_granted(client, cp, cp_server, worker, clock):
    invoice = await new_invoice(client, user_id=207)
    config = await open_widget(client, invoice)
    cp.drop_notifications(Kind.PAY)
    paid = await cp.pay_widget(config["options"], config["scheme"])
    refund = await cabinet_refund(client, cp_server[1], paid["transactionId"])
    assert refund["Success"] and [kind for kind, _ in cp.replies][-1] == Kind.REFUND
    report = await reconcile(client, clock)
    assert (report.found, report.recorded) == (0, 0) and "refunded or cancelled" in report.lines[0]
    await worker.drain()
    assert await operations() == []
    assert await Subscription.find_one(Subscription.user_id == 207) is None


async def cabinet_refund(client, url: str, transaction_id: int) -> dict:
    """Someone refunds the payment by hand at CloudPayments (here through its /payments/refund)."""
    headers = {"Authorization": basic_auth(CP_PUBLIC_ID, CP_SECRET)}
    async with client.session.post(f"{url}/payments/refund", headers=headers,
                                   data={"TransactionId": str(transaction_id), "Amount": "299.00"}) as response:
        return await response.json()


async def test_the_api_down_or_refusing_is_provider_unavailable(client, cp, clock):
    invoice = await new_invoice(client, user_id=208)
    await open_widget(client, invoice)
    cp.down = True
    clock.now += timedelta(minutes=1)
    with pytest.raises(ProviderUnavailable):
        await provider(client).reconcile(clock.now - WINDOW, clock.now, ledger=client.app[LEDGER], now=clock.now)
    assert await sweep_once([provider(client)], client.app[LEDGER], start=clock.now - WINDOW, end=clock.now,
                            now=clock.now) == [], "the sweep skips it this time"
    cp.down, cp.api_secret = False, "rotated-in-the-cabinet"
    with pytest.raises(ProviderUnavailable, match="401"):
        await provider(client).reconcile(clock.now - WINDOW, clock.now, ledger=client.app[LEDGER], now=clock.now)
    assert await operations() == []
