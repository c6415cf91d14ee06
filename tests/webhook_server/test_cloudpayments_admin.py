"""The admin API's refund and two-stage confirm of CloudPayments payments, against the emulator's API."""

from __future__ import annotations

from datetime import timedelta

from billing.money import Money
from billing.providers.cloudpayments.protocol import Kind, Status, basic_auth
from db import InvoiceStatus, OperationStatus, Subscription
from tests.cloudpayments_support import (  # noqa: F401 - fixtures
    CP_PUBLIC_ID,
    CP_SECRET,
    MONTH,
    PRICE_MONTH_RUB,
    cp,
    cp_server,
    invoice_of,
    settings,
)
from tests.conftest import AUTH
from tests.helpers import new_invoice, operations


async def widget_payment(cp, label: str, user_id: int, scheme: str = "charge", **options) -> int:
    """The payer pays in the widget; returns the transaction id."""
    result = await cp.pay_widget({"publicId": CP_PUBLIC_ID, "amount": "299.00", "currency": "RUB",
                                  "invoiceId": label, "accountId": str(user_id), **options}, scheme)
    assert result["success"], result
    return int(result["transactionId"])


async def test_refund_through_the_admin_api_reverses_once(client, cp, worker, clock, notifier):
    invoice = await new_invoice(client, user_id=61)
    transaction = await widget_payment(cp, invoice["label"], 61)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID

    response = await client.post(f"/api/invoices/{invoice['label']}/refund", headers=AUTH)
    assert response.status == 202 and (await response.json())["refund"] == "requested"
    await worker.drain()

    path, fields, request_id = cp.api_calls[-1]
    assert (path, fields) == ("/payments/refund", {"TransactionId": str(transaction), "Amount": "299.00"})
    assert request_id == f"ymds-refund-{transaction}-{PRICE_MONTH_RUB}"
    assert [kind for kind, _ in cp.replies][-1] == Kind.REFUND and cp.replies[-1][1].ok
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.REFUNDED
    assert (await Subscription.find_one(Subscription.user_id == 61)).current_period_end == clock.now
    assert len(notifier.reversals) == 1
    again = await client.post(f"/api/invoices/{invoice['label']}/refund", headers=AUTH)
    assert again.status == 409


async def test_refund_works_when_the_refund_notification_never_arrives(client, cp, worker):
    invoice = await new_invoice(client, user_id=62)
    await widget_payment(cp, invoice["label"], 62)
    await worker.drain()
    cp.deliver = False
    assert (await client.post(f"/api/invoices/{invoice['label']}/refund", headers=AUTH)).status == 202
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.REFUNDED


async def test_refund_refused_or_api_down_changes_nothing(client, cp, worker, clock):
    invoice = await new_invoice(client, user_id=63)
    transaction = await widget_payment(cp, invoice["label"], 63)
    await worker.drain()
    cp.transactions[transaction].refunded = PRICE_MONTH_RUB  # refunded from the cabinet meanwhile
    response = await client.post(f"/api/invoices/{invoice['label']}/refund", headers=AUTH)
    body = await response.json()
    assert response.status == 502 and "exceeds" in body["message"]
    cp.transactions[transaction].refunded = 0
    cp.down = True
    response = await client.post(f"/api/invoices/{invoice['label']}/refund", headers=AUTH)
    assert response.status == 503
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID
    assert (await Subscription.find_one(Subscription.user_id == 63)).current_period_end == clock.now + timedelta(30)


async def test_refund_with_wrong_api_credentials_is_refused(client, cp, worker):
    invoice = await new_invoice(client, user_id=64)
    await widget_payment(cp, invoice["label"], 64)
    await worker.drain()
    cp.api_secret = "rotated-in-the-cabinet"
    response = await client.post(f"/api/invoices/{invoice['label']}/refund", headers=AUTH)
    assert response.status == 502 and "401" in (await response.json())["message"]
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID


async def test_admin_confirm_captures_a_hold_and_activates_once(client, cp, worker, clock, notifier):
    invoice = await new_invoice(client, user_id=65)
    transaction = await widget_payment(cp, invoice["label"], 65, scheme="auth")
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING

    response = await client.post(f"/api/invoices/{invoice['label']}/confirm", headers=AUTH)
    assert response.status == 202 and (await response.json())["confirm"] == "requested"
    await worker.drain()
    assert cp.api_calls[-1][:2] == ("/payments/confirm", {"TransactionId": str(transaction), "Amount": "299.00"})
    assert cp.transactions[transaction].status == Status.COMPLETED
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID
    [operation] = await operations()
    assert operation.status is OperationStatus.APPLIED and operation.payment_token == cp.transactions[transaction].token
    assert len(notifier.notices) == 1
    again = await client.post(f"/api/invoices/{invoice['label']}/confirm", headers=AUTH)
    assert again.status == 409 and (await again.json())["error"] == "nothing_to_confirm"


async def test_admin_confirm_activates_even_if_the_confirm_notification_is_lost(client, cp, worker):
    invoice = await new_invoice(client, user_id=66)
    await widget_payment(cp, invoice["label"], 66, scheme="auth")
    cp.deliver = False
    assert (await client.post(f"/api/invoices/{invoice['label']}/confirm", headers=AUTH)).status == 202
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID


async def test_admin_confirm_with_the_api_down_keeps_the_hold(client, cp, worker):
    invoice = await new_invoice(client, user_id=67)
    await widget_payment(cp, invoice["label"], 67, scheme="auth")
    cp.down = True
    response = await client.post(f"/api/invoices/{invoice['label']}/confirm", headers=AUTH)
    assert response.status == 503
    await worker.drain()
    [operation] = await operations()
    assert operation.status is OperationStatus.HELD
    cp.down = False
    assert (await client.post(f"/api/invoices/{invoice['label']}/confirm", headers=AUTH)).status == 202
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID


async def test_confirm_needs_a_hold_a_known_invoice_and_the_admin_token(client, cp, worker):
    pending = await new_invoice(client, user_id=68)
    response = await client.post(f"/api/invoices/{pending['label']}/confirm", headers=AUTH)
    assert response.status == 409
    assert (await client.post("/api/invoices/inv_none/confirm", headers=AUTH)).status == 404
    assert (await client.post(f"/api/invoices/{pending['label']}/confirm")).status == 401


async def test_api_requests_carry_basic_auth_and_a_request_id(client, cp, worker):
    from aiohttp import ClientSession

    invoice = await new_invoice(client, user_id=69)
    transaction = await widget_payment(cp, invoice["label"], 69)
    await worker.drain()
    url = cp_url(client)
    async with ClientSession() as session:
        unauthorised = await session.post(f"{url}/payments/refund", data={"TransactionId": str(transaction),
                                                                          "Amount": "1.00"})
        assert unauthorised.status == 401
        headers = {"Authorization": basic_auth(CP_PUBLIC_ID, CP_SECRET), "X-Request-ID": "same"}
        first = await (await session.post(f"{url}/payments/refund", headers=headers,
                                          data={"TransactionId": str(transaction), "Amount": "1.00"})).json()
        repeat = await (await session.post(f"{url}/payments/refund", headers=headers,
                                           data={"TransactionId": str(transaction), "Amount": "1.00"})).json()
    assert first == repeat and first["Success"] is True
    assert cp.transactions[transaction].refunded == 100, "a repeated X-Request-ID refunds once"


def cp_url(client) -> str:
    from webhook_server.keys import SETTINGS

    return client.app[SETTINGS].cloudpayments_api_url


async def test_money_goes_to_the_api_as_exact_decimal_text(client, cp, worker):
    invoice = await new_invoice(client, user_id=70, plan="year")
    result = await cp.pay_widget({"publicId": CP_PUBLIC_ID, "amount": "2990.00", "currency": "RUB",
                                  "invoiceId": invoice["label"], "accountId": "70"})
    await worker.drain()
    assert (await client.post(f"/api/invoices/{invoice['label']}/refund", headers=AUTH)).status == 202
    assert cp.api_calls[-1][1] == {"TransactionId": str(result["transactionId"]), "Amount": "2990.00"}
    assert Money(299000, "RUB") == Money(cp.transactions[result["transactionId"]].refunded, "RUB")
