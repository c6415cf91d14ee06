"""One invoice, one payment, for Payme (issue 16 part 1), through the app's real JSON-RPC route: Check and
Create refuse an invoice another payment has claimed before any worker runs; a waiting Payme transaction
holds the invoice against every other payment until it is performed, cancelled or 12 hours old."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from billing.providers.payme.protocol import from_ms
from db import Invoice, InvoiceStatus, OperationStatus
from settings import Settings
from tests.cloudpayments_support import cloudpayments_settings, cp_server, pay_fields, post  # noqa: F401 - fixture
from tests.conftest import YOOMONEY_API_TOKEN
from tests.helpers import new_invoice, notification, operations, post_notification
from tests.payme_support import (
    PAYME_CHECKOUT,
    PAYME_KEY,
    PAYME_MERCHANT,
    PRICE_MONTH_UZS,
    error_code,
    payme,  # noqa: F401 - fixture
    transactions,
)
from webhook_server.emulators.click import Attempt, ClickCaller
from webhook_server.emulators.payme import REASON_EXECUTION_ERROR, TIMEOUT_MS, PaymeEmulator, new_payme_id

CLICK_SECRET = "test_secret"
CLICK = {"click_service_id": "11111", "click_merchant_id": "22222", "click_secret_key": CLICK_SECRET,
         "click_merchant_user_id": "33333", "click_pay_url": "http://click.test/services/pay"}
MONTH_UZS_SUMS = "35000.00"
TWELVE_HOURS = timedelta(milliseconds=TIMEOUT_MS)


@pytest.fixture
def settings(yoomoney_emulator: Any, cp_server: Any) -> Settings:
    """Payme, CloudPayments, Click and YooMoney enabled in one app, each at its emulator."""
    _, yoomoney_url = yoomoney_emulator
    return cloudpayments_settings(
        cp_server[1], payme_merchant_id=PAYME_MERCHANT, payme_key=PAYME_KEY, payme_checkout_url=PAYME_CHECKOUT,
        yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_url, **CLICK,
    )


@pytest.fixture
def click(client: TestClient) -> ClickCaller:
    return ClickCaller(client.session, str(client.make_url("/notify/click")), CLICK["click_service_id"], CLICK_SECRET)


async def stored(label: str) -> Invoice:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice


async def paid_by_yoomoney(client: TestClient, label: str) -> None:
    assert await post_notification(client, notification(label)) == 200


async def paid_by_cloudpayments(client: TestClient, label: str) -> None:
    assert await post(client, "pay", pay_fields(label, 42)) == (200, {"code": 0})


async def refused_as_paid(payme: PaymeEmulator, client: TestClient, label: str, code: int) -> None:
    """Check and Create both refuse with the account error `code` (localized, data = the field)."""
    check = await payme.check(client.session, label, PRICE_MONTH_UZS)
    create = await payme.create(client.session, new_payme_id(), label, PRICE_MONTH_UZS)
    for answer in (check, create):
        assert error_code(answer) == code and payme.account_error(answer), answer.body


@pytest.mark.parametrize("pay", [paid_by_yoomoney, paid_by_cloudpayments])
async def test_an_invoice_another_provider_has_just_paid_is_refused_before_any_worker(client, worker, payme, pay):
    invoice = await new_invoice(client)
    await pay(client, invoice["label"])
    assert (await stored(invoice["label"])).status is InvoiceStatus.PENDING, "no worker has run"

    await refused_as_paid(payme, client, invoice["label"], -31051)
    assert await transactions() == []
    await worker.drain()
    await refused_as_paid(payme, client, invoice["label"], -31051)
    assert [op.status for op in await operations()] == [OperationStatus.APPLIED]


async def test_a_prepared_click_attempt_keeps_payme_out(client, payme, click):
    invoice = await new_invoice(client)
    assert (await click.prepare(Attempt(invoice["label"], MONTH_UZS_SUMS))).error == 0

    await refused_as_paid(payme, client, invoice["label"], -31054)
    assert await transactions() == [] and await operations() == []


async def test_a_waiting_transaction_holds_the_invoice_until_its_timeout(client, clock, payme):
    invoice = await new_invoice(client)
    payme_id, payme_time = new_payme_id(), payme.clock() - 5_000  # Payme made it 5 s before it reached us
    created = await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS, payme_time)
    assert created.result["state"] == 1

    held = await stored(invoice["label"])
    assert held.claimed_by == f"payme:{payme_id}"
    assert held.claim_until == from_ms(payme_time + TIMEOUT_MS + 1), "held through the 12 hours, not a ms less"


async def test_a_waiting_transaction_refuses_a_second_payme_transaction(client, payme):
    invoice = await new_invoice(client)
    first = new_payme_id()
    await payme.create(client.session, first, invoice["label"], PRICE_MONTH_UZS)

    assert error_code(await payme.check(client.session, invoice["label"], PRICE_MONTH_UZS)) == -31008
    assert error_code(await payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS)) == -31008
    assert [tx.payme_id for tx in await transactions()] == [first], "the refused Create left nothing behind"


async def test_a_waiting_transaction_refuses_a_click_prepare(client, worker, payme, click):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)

    assert (await click.prepare(Attempt(invoice["label"], MONTH_UZS_SUMS))).error == -4
    assert (await payme.by_id(client.session, "PerformTransaction", payme_id)).result["state"] == 2
    await worker.drain()
    assert [(op.provider, op.status) for op in await operations()] == [("payme", OperationStatus.APPLIED)]


async def test_a_waiting_transaction_refuses_a_cloudpayments_check(client, payme):
    invoice = await new_invoice(client)
    await payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS)
    status, answer = await post(client, "check", pay_fields(invoice["label"], 42, pay=False))
    assert status == 200 and answer["code"] != 0


@pytest.mark.parametrize("pay", [paid_by_yoomoney, paid_by_cloudpayments])
async def test_cancel_releases_the_hold_so_another_provider_can_pay(client, worker, payme, pay):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    cancel = await payme.by_id(client.session, "CancelTransaction", payme_id, reason=REASON_EXECUTION_ERROR)
    assert cancel.result["state"] == -1
    assert (await stored(invoice["label"])).claimed_by is None

    await pay(client, invoice["label"])
    await worker.drain()
    [operation] = await operations()
    assert operation.status is OperationStatus.APPLIED and operation.provider != "payme"
    assert (await stored(invoice["label"])).status is InvoiceStatus.PAID


async def test_cancel_releases_the_hold_for_a_click_payment(client, worker, payme, click):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    await payme.by_id(client.session, "CancelTransaction", payme_id, reason=REASON_EXECUTION_ERROR)

    replies = await click.pay(invoice["label"], MONTH_UZS_SUMS)
    assert [reply.error for reply in replies] == [0, 0]
    await worker.drain()
    assert (await stored(invoice["label"])).provider == "click"


async def test_the_hold_of_a_transaction_past_12_hours_lapses(client, worker, clock, payme):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    clock.now += TWELVE_HOURS
    assert error_code(await payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS)) == -31008
    await paid_by_yoomoney(client, invoice["label"])
    [early] = await operations()
    assert early.status is OperationStatus.EXTRA, "at exactly 12 hours the transaction still holds the invoice"

    clock.now += timedelta(milliseconds=1)  # Payme never called again: the hold lapses by itself
    await paid_by_cloudpayments(client, invoice["label"])
    await worker.drain()
    assert (await stored(invoice["label"])).provider == "cloudpayments"
    assert error_code(await payme.by_id(client.session, "PerformTransaction", payme_id)) == -31008
    check = await payme.by_id(client.session, "CheckTransaction", payme_id)
    assert (check.result["state"], check.result["reason"]) == (-1, 4)
    assert not [op for op in await operations() if op.provider == "payme"]


async def test_paymes_own_timeout_cancel_releases_the_hold(client, worker, clock, payme):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    clock.now += TWELVE_HOURS + timedelta(minutes=1)
    cancelled = await payme.time_out(client.session, payme_id)
    assert cancelled.result["state"] == -1
    assert (await stored(invoice["label"])).claimed_by is None

    fresh = await payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS)
    assert fresh.result["state"] == 1, "a new attempt may hold the invoice again"


async def test_perform_without_its_hold_answers_paid_elsewhere_and_records_nothing(client, worker, payme):
    """A waiting transaction that holds nothing (made before holds existed), then another provider's payment:
    Perform cannot make its final claim, so it answers −31008 and records nothing; Payme returns the money."""
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    await Invoice.get_motor_collection().update_one(
        {"label": invoice["label"]}, {"$set": {"claimed_by": None, "claim_until": None}})
    await paid_by_cloudpayments(client, invoice["label"])

    perform = await payme.by_id(client.session, "PerformTransaction", payme_id)
    assert error_code(perform) == -31008 and "other means" in perform.body["error"]["message"]["en"]
    await worker.drain()
    assert [op.provider for op in await operations()] == ["cloudpayments"]
    [tx] = await transactions()
    assert tx.state == 1, "Payme cancels it; nothing of ours moved"
