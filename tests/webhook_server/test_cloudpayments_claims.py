"""One invoice, one payment, for CloudPayments: Check refuses an invoice another payment has claimed before any
worker runs, and a Pay without Check for such an invoice is extra, refunded once through /payments/refund."""

from __future__ import annotations

from datetime import timedelta

from billing.providers.cloudpayments.protocol import Kind
from db import ExtraRefund, InvoiceStatus, OperationStatus, Subscription
from db.cloudpayments import CloudPaymentsNotice
from tests.cloudpayments_support import (  # noqa: F401 - fixtures
    CP_PUBLIC_ID,
    MONTH,
    cp,
    cp_server,
    invoice_of,
    pay_fields,
    post,
    settings,
)
from tests.helpers import new_invoice, notification, operations, post_notification
from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator
from webhook_server.keys import PROVIDERS

OK = {"code": 0}


async def paid_through_yoomoney(client, user_id: int) -> dict:
    """An invoice whose YooMoney notification the app has recorded; no worker has run."""
    invoice = await new_invoice(client, user_id=user_id)
    assert await post_notification(client, notification(invoice["label"])) == 200
    [yoomoney] = await operations()
    assert yoomoney.provider == "yoomoney" and yoomoney.status is OperationStatus.RECORDED
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING, "no worker has run"
    return invoice


def widget_options(invoice: dict, user_id: int) -> dict[str, str]:
    return {"publicId": CP_PUBLIC_ID, "amount": "299.00", "currency": "RUB", "invoiceId": invoice["label"],
            "accountId": str(user_id)}


async def test_check_refuses_an_invoice_another_provider_has_just_paid(client, cp, queues):
    invoice = await paid_through_yoomoney(client, user_id=101)
    assert await post(client, Kind.CHECK, pay_fields(invoice["label"], 101, pay=False)) == (200, {"code": 13})
    result = await cp.pay_widget(widget_options(invoice, 101))
    assert not result["success"] and "code 13" in result["reason"]
    assert [kind.value for kind, _ in cp.replies] == ["check"] and cp.transactions == {}
    assert [op.provider for op in await operations()] == ["yoomoney"]


async def test_check_still_accepts_an_unclaimed_invoice(client, cp):
    """The refusal above is the claim's doing: the same Check for a fresh invoice passes."""
    invoice = await new_invoice(client, user_id=102)
    assert await post(client, Kind.CHECK, pay_fields(invoice["label"], 102, pay=False)) == (200, OK)


async def test_pay_without_check_for_a_claimed_invoice_is_extra_and_refunded_once(client, cp, worker, clock,
                                                                                  notifier):
    invoice = await paid_through_yoomoney(client, user_id=103)
    cp.skip_check = True  # a terminal configured without Check: nothing asks us before the money is taken
    result = await cp.pay_widget(widget_options(invoice, 103))
    assert result["success"]
    assert [(kind.value, reply.ok) for kind, reply in cp.replies] == [("pay", True)], "Pay is answered {code: 0}"
    extra = await cloudpayments_operation()
    assert (extra.operation_id, extra.status) == (str(result["transactionId"]), OperationStatus.EXTRA)

    await worker.drain()
    assert [(refund.payment_id, refund.amount) for refund in cp.refunds] == [(result["transactionId"], MONTH.minor)]
    assert [kind.value for kind, _ in cp.replies] == ["pay", "refund"] and cp.replies[-1][1].ok
    await assert_only_yoomoney_applied(invoice, clock, notifier)
    extra = await cloudpayments_operation()
    assert (extra.status, extra.extra_refund) == (OperationStatus.EXTRA, ExtraRefund.REFUNDED)
    assert [(notice.provider, notice.refunded) for notice in notifier.extras] == [("cloudpayments", True)]

    assert await redeliver_refund(client, cp) == (200, OK)
    await worker.drain()
    await assert_only_yoomoney_applied(invoice, clock, notifier)
    assert (await cloudpayments_operation()).status is OperationStatus.EXTRA, "the late Refund changes nothing"
    assert len(cp.refunds) == 1


async def test_the_refund_of_an_extra_payment_is_asked_for_once_whatever_the_reruns(client, cp, worker):
    """settle_extra may run again (a worker that died after the API answered): nothing is refunded twice, also
    when the Refund notification never arrives and our own note of the refund was lost."""
    invoice = await paid_through_yoomoney(client, user_id=104)
    cp.skip_check = True
    cp.drop_notifications(Kind.REFUND)
    result = await cp.pay_widget(widget_options(invoice, 104))
    await worker.drain()
    assert len(cp.refunds) == 1 and len(cp.dropped) == 1
    provider = client.app[PROVIDERS].get("cloudpayments")
    refund = {"operation_id": str(result["transactionId"]), "amount": MONTH, "label": invoice["label"]}
    await provider.refund(**refund)
    assert api_refunds(cp) == 1, "our note of the refund: not asked again"
    await CloudPaymentsNotice.find({"kind": "refund_sent"}).delete()
    await provider.refund(**refund)
    assert api_refunds(cp) == 2 and cp.api_calls[-1][2] == cp.api_calls[-2][2], "the same X-Request-ID"
    assert len(cp.refunds) == 1, "answered from CloudPayments' store: one refund"
    await cp.redeliver_dropped()
    await CloudPaymentsNotice.find({"kind": "refund_sent"}).delete()
    await provider.refund(**refund)
    assert api_refunds(cp) == 2, "the Refund notification shows it refunded: not asked again"


async def cloudpayments_operation():
    [operation] = [op for op in await operations() if op.provider == "cloudpayments"]
    return operation


def api_refunds(cp: CloudPaymentsEmulator) -> int:
    return sum(path == "/payments/refund" for path, _, _ in cp.api_calls)


async def redeliver_refund(client, cp: CloudPaymentsEmulator):
    """CloudPayments delivers the Refund notification of the extra payment once more."""
    [fields] = [fields for kind, fields in cp.delivered if kind == Kind.REFUND]
    return await post(client, Kind.REFUND, fields)


async def assert_only_yoomoney_applied(invoice: dict, clock, notifier) -> None:
    paid = await invoice_of(invoice["label"])
    assert (paid.status, paid.provider) == (InvoiceStatus.PAID, "yoomoney")
    subscription = await Subscription.find_one(Subscription.user_id == paid.user_id)
    assert subscription.current_period_end == clock.now + timedelta(days=30), "one period, from one payment"
    assert [notice.user_id for notice in notifier.notices] == [paid.user_id]
    assert notifier.reversals == []
