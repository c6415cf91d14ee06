"""Click's fiscal receipts through the real routes, the Click emulator over HTTP (its SHOP-API caller and its
ofd_data API) and a real RQ worker: one submission per payment, retried on a 5xx, a refusal recorded and told
to the admin chat once, a crash between the steps neither sending twice nor never, and the link to the payer."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from rq.job import Job

from billing.plan_receipt import PlanReceipt
from billing.plans import Catalogue
from db import Operation
from db.click_receipts import ClickReceipt, ClickReceiptState
from rq_access import job_id
from tests.conftest import YOOMONEY_API_TOKEN, make_settings
from tests.helpers import plans_with_month_receipt
from tests.webhook_server.test_click_reconcile import click_emulator as click_emulator
from tests.webhook_server.test_notify_click import CLICK, MONTH_UZS, SECRET, Crash, fail_at, uzs_invoice
from webhook_server.emulators.click import MERCHANT_API, ClickCaller, auth_header
from webhook_server.keys import QUEUES

IKPU = "10305008002000000"
PACKAGE = "1514296"
TIN = "310618348"
RECEIPTS = {"click_receipts": True, "receipt_ikpu": IKPU, "receipt_package_code": PACKAGE,
            "receipt_vat_percent": 12, "receipt_seller_tin": TIN}
MONTH_TIYIN = 3_500_000


@pytest.fixture
def settings(request, yoomoney_emulator, click_emulator):
    receipts = RECEIPTS if getattr(request, "param", True) else {}
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
                         job_max_retries=2, job_retry_intervals=[0],
                         **{**CLICK, "click_api_url": click_emulator[1] + MERCHANT_API, **receipts})


@pytest.fixture
def click(client: TestClient, click_emulator) -> ClickCaller:
    emulator, _ = click_emulator
    emulator.notify_base = str(client.make_url("/notify/click"))
    return emulator.caller(client.session)


async def paid(client: TestClient, click: ClickCaller, user_id: int = 42) -> tuple[str, int, str]:
    """An invoice paid through Click: (label, Click's payment id, the ledger's operation id)."""
    label = await uzs_invoice(client, user_id=user_id)
    prepared, completed = await click.pay(label, MONTH_UZS)
    assert (prepared.error, completed.error) == (0, 0)
    [(fields, _)] = [sent for sent in click.sent if sent[0]["action"] == "1"]
    operation = await Operation.find_one({"provider": "click", "label": label})
    assert operation is not None
    return label, int(fields["click_paydoc_id"]), operation.operation_id


async def receipt(operation_id: str) -> ClickReceipt:
    found = await ClickReceipt.by_operation(operation_id)
    assert found is not None
    return found


def run_again(client: TestClient, operation_id: str) -> None:
    """What an operator's `ymds jobs requeue` (or a duplicate enqueue) does to the receipt's job."""
    queues = client.app[QUEUES]
    existing = Job.fetch(job_id("fiscal-receipt", "click", operation_id), connection=queues.connection)
    existing.requeue() if existing.is_failed else queues.fulfilment.enqueue_job(existing)


@pytest.fixture
def plans(request) -> Catalogue:
    """The repository's plans; with a PlanReceipt parameter, the month's own `receipt = {...}`."""
    return plans_with_month_receipt(getattr(request, "param", None))


@pytest.mark.parametrize("plans", [PlanReceipt(title="Club access, 30 days", package_code="1209001")],
                         indirect=True)
async def test_a_plans_own_receipt_fields_reach_the_submitted_items(client, click, click_emulator, worker):
    emulator, _ = click_emulator
    await paid(client, click)
    await worker.drain()
    [body] = emulator.ofd.submissions
    [item] = body["items"]
    assert (item["Name"], item["PackageCode"], item["SPIC"], item["VATPercent"]) == (
        "Club access, 30 days", "1209001", IKPU, 12), "the plan's title and package code, the shop's IKPU and VAT"


async def test_a_payment_submits_one_receipt_and_the_notice_links_it(client, click, click_emulator, worker,
                                                                      notifier):
    emulator, _ = click_emulator
    label, payment_id, operation_id = await paid(client, click, user_id=9)
    await worker.drain()
    [body] = emulator.ofd.submissions
    assert body == {"service_id": 11111, "payment_id": payment_id, "items": [{
        "Name": "1 month", "SPIC": IKPU, "PackageCode": PACKAGE, "GoodPrice": MONTH_TIYIN, "Price": MONTH_TIYIN,
        "Amount": 1, "VAT": 375_000, "VATPercent": 12, "CommissionInfo": {"TIN": TIN}}],
        "received_ecash": 0, "received_cash": 0, "received_card": MONTH_TIYIN}
    stored = await receipt(operation_id)
    assert stored.state is ClickReceiptState.SUBMITTED and stored.submissions == 1
    assert stored.qr_code_url == emulator.ofd.receipts[payment_id]
    [notice] = notifier.notices
    assert notice.user_id == 9 and notice.receipt_url == stored.qr_code_url and notifier.receipts == []
    run_again(client, operation_id)  # a duplicate run sends nothing
    await worker.drain()
    assert len(emulator.ofd.submissions) == 1 and notifier.receipts == []


@pytest.mark.parametrize("settings", [False], indirect=True)
async def test_with_receipts_off_nothing_is_submitted(client, click, click_emulator, worker, notifier):
    emulator, _ = click_emulator
    await paid(client, click)
    await worker.drain()
    assert emulator.ofd.submissions == [] and await ClickReceipt.find_all().count() == 0
    assert notifier.notices[0].receipt_url is None


async def test_a_5xx_is_retried_and_the_receipt_registered_once(client, click, click_emulator, worker):
    emulator, _ = click_emulator
    emulator.ofd.failures = 1
    _, payment_id, operation_id = await paid(client, click)
    await worker.drain()
    assert len(emulator.ofd.submissions) == 2, "the 5xx registered nothing, so the retry sent it"
    stored = await receipt(operation_id)
    assert stored.state is ClickReceiptState.SUBMITTED and stored.submissions == 2
    assert list(emulator.ofd.receipts) == [payment_id]


async def test_clicks_refusal_is_recorded_and_told_to_the_admin_chat_once(client, click, click_emulator, worker,
                                                                          notifier):
    emulator, _ = click_emulator
    emulator.ofd.refuse = (-31, "SPIC not registered for this TIN")
    label, _, operation_id = await paid(client, click, user_id=5)
    await worker.drain()
    stored = await receipt(operation_id)
    assert (stored.state, stored.error_code, stored.error_note) == (ClickReceiptState.REFUSED, -31,
                                                                    "SPIC not registered for this TIN")
    [refusal] = notifier.fiscal_refusals
    assert (refusal.label, refusal.user_id, refusal.error_code, refusal.operation_id) == (label, 5, -31, operation_id)
    run_again(client, operation_id)
    await worker.drain()
    assert len(emulator.ofd.submissions) == 1 and len(notifier.fiscal_refusals) == 1
    assert notifier.notices[0].receipt_url is None


async def test_a_receipt_click_finds_invalid_is_refused_with_its_reason(client, click, click_emulator, worker,
                                                                        notifier):
    emulator, _ = click_emulator
    emulator.ofd.refuse = None
    _, payment_id, operation_id = await paid(client, click)
    emulator.state.by_id(payment_id).amount = "34999.99"  # Click's book says otherwise: the items cannot add up
    await worker.drain()
    stored = await receipt(operation_id)
    assert stored.state is ClickReceiptState.REFUSED and "must both be 3499999" in (stored.error_note or "")
    assert len(notifier.fiscal_refusals) == 1


@pytest.mark.parametrize("step", ["after_claim", "after_submit", "after_result"])
async def test_a_crash_between_steps_submits_exactly_once(client, click, click_emulator, worker, step):
    emulator, _ = click_emulator
    worker.runtime.checkpoint = fail_at(step, Crash(step))
    _, payment_id, operation_id = await paid(client, click)
    await worker.drain()  # crashes at every try; a try after a crash that followed the POST finds Click has it
    assert (await receipt(operation_id)).state is not ClickReceiptState.PENDING
    worker.runtime.checkpoint = fail_at("never", Crash("never"))
    run_again(client, operation_id)
    await worker.drain()
    stored = await receipt(operation_id)
    assert stored.state is ClickReceiptState.SUBMITTED
    assert list(emulator.ofd.receipts) == [payment_id]
    assert len(emulator.ofd.submissions) == 1, "Click had it, or had never got it: sent once in all"
    operation = await Operation.find_one({"provider": "click", "operation_id": operation_id})
    assert operation is not None and operation.receipt_url == emulator.ofd.receipts[payment_id]


async def test_a_link_after_the_notice_comes_in_one_follow_up(client, click, click_emulator, worker, notifier):
    emulator, _ = click_emulator
    emulator.ofd.withhold_link = True
    label, payment_id, operation_id = await paid(client, click, user_id=11)
    await worker.drain()
    assert notifier.notices[0].receipt_url is None and (await receipt(operation_id)).qr_code_url is None
    emulator.ofd.withhold_link = False
    run_again(client, operation_id)
    await worker.drain()
    [follow_up] = notifier.receipts
    assert (follow_up.user_id, follow_up.url) == (11, emulator.ofd.receipts[payment_id])
    assert len(emulator.ofd.submissions) == 1


async def test_the_ofd_emulator_refuses_a_bad_auth_and_a_malformed_receipt(client, click, click_emulator):
    emulator, base = click_emulator
    _, payment_id, _ = await paid(client, click)
    url = base + MERCHANT_API + "/payment/ofd_data/submit_items"
    good: dict[str, Any] = {"service_id": 11111, "payment_id": payment_id, "items": [{
        "Name": "1 month", "SPIC": IKPU, "PackageCode": PACKAGE, "Price": MONTH_TIYIN, "Amount": 1, "VAT": 375_000,
        "VATPercent": 12, "CommissionInfo": {"PINFL": "12345678901234"}}],
        "received_ecash": 0, "received_cash": 0, "received_card": MONTH_TIYIN}
    auth = {"Auth": auth_header("33333", SECRET, 1763812800)}
    response = await client.session.post(url, json=good, headers={"Auth": auth_header("33333", "wrong", 1763812800)})
    assert response.status == 401
    for broken in ({**good, "items": []}, {**good, "received_card": 1},
                   {**good, "items": [{**good["items"][0], "VAT": 0}]},
                   {**good, "items": [{**good["items"][0], "CommissionInfo": {}}]},
                   {**good, "payment_id": payment_id + 1}):
        response = await client.session.post(url, json=broken, headers=auth)
        assert (await response.json())["error_code"] < 0
    assert emulator.ofd.receipts == {}
    response = await client.session.post(url, json=good, headers=auth)
    assert (await response.json())["error_code"] == 0 and payment_id in emulator.ofd.receipts
