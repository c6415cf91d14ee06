"""YooKassa's 54-FZ receipts (YOOKASSA_RECEIPTS): a payment, a partial and a full refund of a plan or an order
carry the receipt the emulated fiscalizing shop checks and registers; without the buyer's contact nothing is
asked of YooKassa; a receipt the shop refuses leaves nothing paid. Through the page's button, the admin API and
the emulator over HTTP, with the real worker."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from billing.providers.yookassa.protocol import authorization
from db import Invoice, InvoiceStatus
from db.users import ReceiptContact
from settings import Settings
from tests.conftest import YOOMONEY_API_TOKEN, make_settings
from tests.helpers import give_invoice_contact, new_invoice
from tests.webhook_server.test_orders_api import post_order
from tests.webhook_server.test_orders_yookassa import refund, refund_requests
from tests.yookassa_support import (
    SECRET_KEY,
    SHOP_ID,
    checkout,
    press_pay,
    yookassa,
    yookassa_emulator,
    yookassa_settings,
)
from webhook_server.emulators.yookassa import YooKassaEmulator
from webhook_server.emulators.yoomoney import YooMoneyEmulator

__all__ = ["yookassa", "yookassa_emulator"]  # fixtures, imported for pytest

EMAIL = "buyer@example.com"
NO_RECEIPT = {"type": "error", "code": "invalid_request", "description": "Receipt is missing or illegal",
              "parameter": "receipt"}


@pytest.fixture
def receipts_on() -> bool:
    return True


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str], yookassa_emulator: tuple[YooKassaEmulator, str],
             receipts_on: bool) -> Settings:
    emulator, url = yookassa_emulator
    emulator.rules.receipts_required = True  # the shop fiscalizes through YooKassa
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
                         **yookassa_settings(url + "/v3", yookassa_receipts=receipts_on, receipt_vat_code=1,
                                             receipt_tax_system_code=2))


def expected_receipt(title: str, value: str, contact: dict[str, str] | None = None) -> dict[str, Any]:
    return {"customer": contact or {"email": EMAIL}, "tax_system_code": 2, "items": [{
        "description": title, "quantity": "1.00", "amount": {"value": value, "currency": "RUB"}, "vat_code": 1,
        "payment_subject": "service", "payment_mode": "full_payment"}]}


async def pay(client, worker, yookassa: YooKassaEmulator, made: dict[str, Any]) -> str:
    answer, location = await press_pay(client, made)
    assert answer == 303
    assert await checkout(location) == 303
    await yookassa.settle()
    await worker.drain()
    [payment_id] = [pid for pid, p in yookassa.payments.items() if p["metadata"]["label"] == made["label"]]
    return payment_id


def posted_payments(yookassa: YooKassaEmulator) -> list[dict[str, Any]]:
    return [body for method, path, _, body in yookassa.requests if (method, path) == ("POST", "/v3/payments")]


async def test_a_plan_paid_with_receipts_on_carries_the_receipt_the_shop_registered(client, worker, yookassa):
    made = await new_invoice(client, user_id=301)
    await give_invoice_contact(made["label"], ReceiptContact(email=EMAIL))
    payment_id = await pay(client, worker, yookassa, made)

    assert yookassa.receipts == [("payment", payment_id, expected_receipt("1 month", "299.00"))]
    invoice = await Invoice.find_one(Invoice.label == made["label"])
    assert (invoice.status, invoice.provider) == (InvoiceStatus.PAID, "yookassa")


async def test_a_phone_is_the_customer_when_there_is_no_email(client, worker, yookassa):
    made = await new_invoice(client, user_id=302, plan="year")
    await give_invoice_contact(made["label"], ReceiptContact(phone="79001234567"))
    payment_id = await pay(client, worker, yookassa, made)
    assert yookassa.receipts == [("payment", payment_id,
                                  expected_receipt("12 months", "2990.00", {"phone": "79001234567"}))]


async def test_without_a_contact_nothing_is_created_and_the_page_says_why(client, yookassa):
    made = await new_invoice(client, user_id=303)
    response = await client.post(f"/pay/{made['label']}/yookassa", data=dict(
        part.split("=", 1) for part in made["pay_url"].split("?", 1)[1].split("&")), allow_redirects=False)
    page = await response.text()
    assert response.status == 409 and 'id="receipt-contact-needed"' in page
    assert posted_payments(yookassa) == [] and yookassa.payments == {}
    assert (await Invoice.find_one(Invoice.label == made["label"])).status is InvoiceStatus.PENDING


async def test_an_order_is_receipted_by_its_description_and_each_refund_by_its_part(client, worker, yookassa):
    status, made = await post_order(client, {"user_id": 304, "amounts": {"RUB": 50000},
                                             "description": "Consultation, 1 hour", "order_id": "yk-rcpt"})
    assert status == 201
    await give_invoice_contact(made["label"], ReceiptContact(email=EMAIL))
    payment_id = await pay(client, worker, yookassa, made)
    assert yookassa.receipts[0] == ("payment", payment_id, expected_receipt("Consultation, 1 hour", "500.00"))

    status, part = await refund(client, made["label"], {"amount": 12345, "refund_id": "r-1"})
    assert (status, part["refunded_amount"]) == (202, 12345)
    status, rest = await refund(client, made["label"])  # what is left
    assert (status, rest["refunded_amount"]) == (202, 50000)
    [first, second] = [body["receipt"] for _, body in refund_requests(yookassa)]
    assert first == expected_receipt("Consultation, 1 hour", "123.45")
    assert second == expected_receipt("Consultation, 1 hour", "376.55"), "the remainder, to the kopeck"
    assert [kind for kind, _, _ in yookassa.receipts] == ["payment", "refund", "refund"]


async def test_a_refund_without_the_contact_is_refused_before_yookassa_is_asked(client, worker, yookassa):
    made = await new_invoice(client, user_id=305)
    await give_invoice_contact(made["label"], ReceiptContact(email=EMAIL))
    await pay(client, worker, yookassa, made)
    await give_invoice_contact(made["label"], None)
    status, _ = await refund(client, made["label"], {"amount": 100})
    assert status >= 400
    assert refund_requests(yookassa) == []
    assert (await Invoice.find_one(Invoice.label == made["label"])).refunded_amount == 0


@pytest.mark.parametrize("receipts_on", [False])
async def test_receipts_off_sends_none_and_a_fiscalizing_shop_refuses_cleanly(client, worker, yookassa):
    made = await new_invoice(client, user_id=306)
    await give_invoice_contact(made["label"], ReceiptContact(email=EMAIL))
    answer, _ = await press_pay(client, made)
    assert answer == 502, "YooKassa's refusal: the page says the payment could not be opened"
    [body] = posted_payments(yookassa)
    assert "receipt" not in body
    assert yookassa.payments == {} and yookassa.receipts == []
    await worker.drain()
    assert (await Invoice.find_one(Invoice.label == made["label"])).status is InvoiceStatus.PENDING


def valid_body(**receipt_changes: Any) -> dict[str, Any]:
    receipt = {**expected_receipt("1 month", "299.00"), **receipt_changes}
    return {"amount": {"value": "299.00", "currency": "RUB"}, "capture": True, "description": "x",
            "confirmation": {"type": "redirect", "return_url": "http://shop.test/"}, "metadata": {"label": "l"},
            "receipt": receipt}


def api_headers(key: str) -> dict[str, str]:
    return {"Authorization": authorization(SHOP_ID, SECRET_KEY), "Idempotence-Key": key}


def item(**changes: Any) -> list[dict[str, Any]]:
    return [{**expected_receipt("1 month", "299.00")["items"][0], **changes}]


@pytest.mark.parametrize("receipt", [
    None,
    {"customer": {}},
    {"customer": {"email": "not-an-address"}},
    {"items": []},
    {"items": item(vat_code=13)},
    {"items": item(vat_code="1")},
    {"items": item(payment_subject="subscription")},
    {"items": item(payment_mode="monthly")},
    {"items": item(amount={"value": "298.99", "currency": "RUB"})},
    {"items": item(quantity="0")},
    {"items": item(description="x" * 129)},
    {"tax_system_code": 7},
    {"items": [*item(amount={"value": "200.00", "currency": "RUB"}), *item(amount={"value": "99.01",
                                                                                  "currency": "RUB"})]},
], ids=["missing", "no-contact", "bad-email", "no-items", "vat-13", "vat-as-text", "subject", "mode",
        "short-by-a-kopeck", "zero-quantity", "long-description", "tax-system-7", "items-over-by-a-kopeck"])
async def test_the_fiscalizing_emulator_refuses_what_yookassa_refuses(yookassa_emulator, receipt):
    emulator, url = yookassa_emulator
    emulator.rules.receipts_required = True
    body = valid_body() if receipt is None else valid_body(**receipt)
    if receipt is None:
        del body["receipt"]
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/v3/payments", json=body, headers=api_headers("k-1")) as response:
            answer = await response.json()
            assert response.status == 400
    assert {name: answer[name] for name in NO_RECEIPT} == NO_RECEIPT
    assert emulator.payments == {} and emulator.receipts == []


async def test_the_fiscalizing_emulator_takes_two_items_that_add_up(yookassa_emulator):
    emulator, url = yookassa_emulator
    emulator.rules.receipts_required = True
    items = [*item(amount={"value": "100.00", "currency": "RUB"}, quantity=2),
             *item(amount={"value": "99.00", "currency": "RUB"}, quantity="1.000")]
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/v3/payments", json=valid_body(items=items, customer={"phone": "79001234567"}),
                                headers=api_headers("k-2")) as response:
            assert response.status == 200
    assert len(emulator.receipts) == 1


async def test_a_full_refund_of_a_plan_carries_the_whole_amount_back(client, worker, yookassa, notifier):
    made = await new_invoice(client, user_id=307)
    await give_invoice_contact(made["label"], ReceiptContact(email=EMAIL))
    payment_id = await pay(client, worker, yookassa, made)
    status, _ = await refund(client, made["label"])
    assert status == 202
    await yookassa.settle()
    await worker.drain()
    [(_, body)] = refund_requests(yookassa)
    assert body["payment_id"] == payment_id and body["receipt"] == expected_receipt("1 month", "299.00")
    assert [kind for kind, _, _ in yookassa.receipts] == ["payment", "refund"]
    assert (await Invoice.find_one(Invoice.label == made["label"])).status is InvoiceStatus.REFUNDED
