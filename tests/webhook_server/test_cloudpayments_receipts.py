"""CloudPayments' 54-FZ receipts (CLOUDPAYMENTS_RECEIPTS): the widget's data carries the CustomerReceipt (and the
subscription's customerReceipt), a token charge its JsonData, and every refund an IncomeReturn receipt issued
once through /kkt/receipt, also when the first answer was lost. Against the emulator's fiscalizing kassa over
HTTP, through our widget page and the admin API, with the real worker."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing.providers.base import ChargeStatus
from billing.providers.cloudpayments import CloudPayments
from billing.sweep import sweep_once
from db import Invoice, InvoiceStatus
from db.cloudpayments_receipts import CloudPaymentsRefundReceipt, RefundReceiptState
from db.users import ReceiptContact
from settings import Settings
from tests.charge_support import Remembered, renewal
from tests.cloudpayments_support import (
    CP_PUBLIC_ID,
    cloudpayments_settings,
    cp,
    cp_server,
    give_consent,
    link_fields,
    open_widget,
    reconfigure,
    widget_config,
    widget_page,
)
from tests.conftest import AUTH, YOOMONEY_API_TOKEN
from tests.helpers import give_invoice_contact, give_receipt_contact, new_invoice
from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator
from webhook_server.emulators.yoomoney import YooMoneyEmulator
from webhook_server.keys import LEDGER, PROVIDERS

__all__ = ["cp", "cp_server"]  # fixtures, imported for pytest

EMAIL = "buyer@example.com"
INN = "7708806062"


@pytest.fixture
def receipts_on() -> bool:
    return True


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str], cp_server: tuple[CloudPaymentsEmulator, str],
             receipts_on: bool) -> Settings:
    emulator, url = cp_server
    emulator.receipts_required = receipts_on  # the site's online kassa fiscalizes
    return cloudpayments_settings(url, yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
                                  cloudpayments_receipts=receipts_on, cloudpayments_inn=INN, receipt_vat_code=1,
                                  receipt_tax_system_code=2)


def expected(title: str, value: str, contact: dict[str, str] | None = None) -> dict[str, Any]:
    amount = Decimal(value)
    return {"Items": [{"label": title, "price": amount, "quantity": Decimal("1.00"), "amount": amount, "vat": None,
                       "method": 4, "object": 4}],
            "taxationSystem": 1, **(contact or {"email": EMAIL}),
            "amounts": {"electronic": amount, "advancePayment": Decimal("0.00"), "credit": Decimal("0.00"),
                        "provision": Decimal("0.00")}}


def as_text(receipt: dict[str, Any]) -> dict[str, Any]:
    """The same receipt as the JSON API body carries it: exact decimal strings."""
    return {key: as_text(value) if isinstance(value, dict) else [as_text(v) for v in value]
            if isinstance(value, list) else format(value, "f") if isinstance(value, Decimal) else value
            for key, value in receipt.items()}


async def paid_in_widget(client, worker, cp: CloudPaymentsEmulator, user_id: int) -> tuple[dict[str, Any], dict]:
    invoice = await new_invoice(client, user_id=user_id)
    await give_invoice_contact(invoice["label"], ReceiptContact(email=EMAIL))
    config = await open_widget(client, invoice)
    result = await cp.pay_widget(config["options"], config["scheme"])
    assert result["success"], result
    await worker.drain()
    assert (await Invoice.find_one(Invoice.label == invoice["label"])).status is InvoiceStatus.PAID
    return invoice, config


def provider_of(client) -> CloudPayments:
    provider = client.app[PROVIDERS].get("cloudpayments")
    assert isinstance(provider, CloudPayments)
    return provider


async def refund(client, label: str, body: dict | None = None) -> int:
    response = await client.post(f"/api/invoices/{label}/refund", json=body, headers=AUTH)
    await response.read()
    return response.status


async def test_the_widget_carries_the_receipt_the_kassa_registered(client, worker, cp):
    invoice, config = await paid_in_widget(client, worker, cp, 401)
    receipt = config["options"]["data"]["CloudPayments"]["CustomerReceipt"]
    assert receipt == expected("1 month", "299.00")
    assert cp.receipts == [("widget", invoice["label"], receipt)]


async def test_a_subscription_set_up_by_the_widget_carries_the_receipt_of_each_charge(client, clock, cp):
    reconfigure(client, recurrent_plans=["month"])
    invoice = await new_invoice(client, user_id=402)
    await give_invoice_contact(invoice["label"], ReceiptContact(phone="79001234567"))
    await give_consent(invoice["label"], clock())
    config = widget_config(await (await widget_page(client, invoice["label"],
                                                    link_fields(invoice["pay_url"]))).text())
    section = config["options"]["data"]["CloudPayments"]
    assert section["CustomerReceipt"] == expected("1 month", "299.00", {"phone": "79001234567"})
    assert section["recurrent"] == {"interval": "Day", "period": 30, "customerReceipt": section["CustomerReceipt"]}
    assert (await cp.pay_widget(config["options"]))["success"]
    assert [kind for kind, _, _ in cp.receipts] == ["widget", "recurrent"]


async def test_without_a_contact_no_widget_opens(client, cp):
    invoice = await new_invoice(client, user_id=403)
    response = await widget_page(client, invoice["label"], link_fields(invoice["pay_url"]))
    assert response.status == 409 and 'id="receipt-contact-needed"' in await response.text()
    assert "cloudpayments-config" not in await response.text()


async def test_a_refund_issues_one_income_return_receipt(client, worker, cp):
    invoice, _ = await paid_in_widget(client, worker, cp, 404)
    assert await refund(client, invoice["label"]) == 202
    await worker.drain()
    [issued] = cp.kkt_receipts
    assert {name: issued[name] for name in ("Inn", "Type", "InvoiceId", "AccountId")} == {
        "Inn": INN, "Type": "IncomeReturn", "InvoiceId": invoice["label"], "AccountId": "404"}
    assert issued["CustomerReceipt"] == as_text(expected("1 month", "299.00"))
    [row] = await CloudPaymentsRefundReceipt.find_all().to_list()
    assert (row.state, row.receipt_id, row.amount) == (RefundReceiptState.ISSUED, issued["Id"], 29900)
    assert await refund(client, invoice["label"]) == 409
    assert len(cp.kkt_receipts) == 1


async def test_a_partial_refund_is_receipted_for_its_part(client, worker, cp):
    invoice, _ = await paid_in_widget(client, worker, cp, 405)
    assert await refund(client, invoice["label"], {"amount": 12345, "refund_id": "p-1"}) == 202
    assert await refund(client, invoice["label"], {"amount": 12345, "refund_id": "p-1"}) == 202  # the same part
    [issued] = cp.kkt_receipts
    assert issued["CustomerReceipt"] == as_text(expected("1 month", "123.45"))


async def test_a_receipt_whose_answer_was_lost_is_issued_once_when_tried_again(client, worker, cp, clock):
    invoice, _ = await paid_in_widget(client, worker, cp, 406)
    cp.kkt_failures = 1  # CloudPayments queued the receipt, but answered 500
    assert await refund(client, invoice["label"]) == 202, "the money went back: the refund stands"
    [row] = await CloudPaymentsRefundReceipt.find_all().to_list()
    assert row.state is RefundReceiptState.PENDING and len(cp.kkt_receipts) == 1

    for _ in range(2):  # the scheduler's sweeps: the same X-Request-ID again, then nothing left to send
        await sweep_once([provider_of(client)], client.app[LEDGER], start=clock.now - timedelta(hours=1),
                         end=clock.now, now=clock.now)
    [row] = await CloudPaymentsRefundReceipt.find_all().to_list()
    assert (row.state, row.tries) == (RefundReceiptState.ISSUED, 2)
    assert len(cp.kkt_receipts) == 1, "one receipt at CloudPayments"


async def test_a_refund_without_the_contact_is_refused_before_any_money_moves(client, worker, cp):
    invoice, _ = await paid_in_widget(client, worker, cp, 407)
    await give_invoice_contact(invoice["label"], None)
    assert await refund(client, invoice["label"]) >= 400
    assert cp.refunds == [] and cp.kkt_receipts == []


async def test_a_token_charge_carries_the_receipt_or_is_not_made(client, worker, cp):
    """No contact anywhere: no charge; the user's /email contact, later: the charge's receipt goes there."""
    invoice, _ = await paid_in_widget(client, worker, cp, 408)
    [token] = cp.tokens
    renewal_invoice = await new_invoice(client, user_id=408)
    await give_invoice_contact(invoice["label"], None)
    without = await provider_of(client).charge(renewal(renewal_invoice["label"], token, user_id=408), Remembered())
    assert (without.status, without.hard, without.keep_method) == (ChargeStatus.DECLINED, True, True)
    assert cp.charges == []

    await give_receipt_contact(408, ReceiptContact(email="later@example.com"))
    charged = await provider_of(client).charge(renewal(renewal_invoice["label"], token, user_id=408,
                                                       key="attempt-2"), Remembered())
    assert charged.status is ChargeStatus.SUCCEEDED and len(cp.charges) == 1
    [(kind, label, receipt)] = [entry for entry in cp.receipts if entry[0] == "charge"]
    assert (kind, label) == ("charge", renewal_invoice["label"])
    assert receipt == expected("1 month", "299.00", {"email": "later@example.com"})


@pytest.mark.parametrize("receipts_on", [False])
async def test_receipts_off_sends_none(client, worker, cp):
    invoice = await new_invoice(client, user_id=409)
    config = await open_widget(client, invoice)
    assert "CloudPayments" not in config["options"]["data"]
    assert (await cp.pay_widget(config["options"]))["success"]
    await worker.drain()
    assert await refund(client, invoice["label"]) == 202
    assert cp.kkt_receipts == [] and await CloudPaymentsRefundReceipt.find_all().to_list() == []


@pytest.mark.parametrize("change", [
    {"CustomerReceipt": None},
    {"vat": 18}, {"method": 9}, {"amount": Decimal("298.99")}, {"email": None}, {"electronic": Decimal("1.00")},
], ids=["missing", "vat-18", "method-9", "amount-short", "no-contact", "amounts-not-the-sum"])
async def test_the_fiscalizing_kassa_refuses_a_widget_payment_without_a_valid_receipt(client, cp, change):
    invoice = await new_invoice(client, user_id=410)
    receipt = expected("1 month", "299.00")
    if "vat" in change or "method" in change or "amount" in change:
        receipt["Items"] = [{**receipt["Items"][0], **change}]
    elif "email" in change:
        del receipt["email"]
    elif "electronic" in change:
        receipt["amounts"] = {**receipt["amounts"], **change}
    data: dict[str, Any] = {"label": invoice["label"]}
    if "CustomerReceipt" not in change:
        data["CloudPayments"] = {"CustomerReceipt": receipt}
    result = await cp.pay_widget({"publicId": CP_PUBLIC_ID, "amount": Decimal("299.00"), "currency": "RUB",
                                  "invoiceId": invoice["label"], "accountId": "410", "data": data})
    assert result["success"] is False and result["reason"].startswith("receipt:")
    assert cp.transactions == {} and cp.delivered == [] and cp.receipts == []
    assert (await Invoice.find_one(Invoice.label == invoice["label"])).status is InvoiceStatus.PENDING
