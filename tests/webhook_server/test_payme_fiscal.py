"""Payme's fiscal receipts through the real route, the Payme emulator over HTTP and a real RQ worker:
CheckPerformTransaction's `detail` with PAYME_RECEIPTS on and off, a fiscalising kassa refusing a missing or wrong
detail, SetFiscalData (auth, unknown transaction, malformed, repeated), and the receipt's link reaching the payer."""

from __future__ import annotations

import pytest

from billing.plan_receipt import PlanReceipt
from billing.plans import Catalogue
from db import Operation
from db.payme import PaymeTransaction
from tests.conftest import YOOMONEY_API_TOKEN
from tests.helpers import new_invoice, plans_with_month_receipt
from tests.payme_support import (
    PAYME_KEY,
    PRICE_MONTH_UZS,
    error_code,
    payme as payme,
    payme_settings,
    rpc,
    transactions,
)
from webhook_server.emulators.payme import basic_auth, new_payme_id
from webhook_server.emulators.payme_fiscal import detail_problem

IKPU = "10305008002000000"
PACKAGE = "1514296"
RECEIPTS = {"payme_receipts": True, "receipt_ikpu": IKPU, "receipt_package_code": PACKAGE,
            "receipt_vat_percent": 12, "receipt_seller_tin": "310618348"}
QR = "https://ofd.soliq.uz/epi?t=EP000000000025&r=121&c=20261202120000&s=800031554082"
FISCAL = {"receipt_id": 121, "status_code": 0, "message": "accepted", "terminal_id": "EP000000000025",
          "fiscal_sign": "800031554082", "qr_code_url": QR, "date": "20261202120000"}


@pytest.fixture
def settings(request, yoomoney_emulator):
    receipts = RECEIPTS if getattr(request, "param", True) else {}
    return payme_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1], **receipts)


async def link_of(payme_id: str) -> str | None:
    operation = await Operation.find_one({"provider": "payme", "operation_id": payme_id})
    return None if operation is None else operation.receipt_url


# ---- CheckPerformTransaction


async def test_check_answers_the_receipt_detail_summing_to_the_amount(client, payme):
    invoice = await new_invoice(client)
    answer = await payme.check(client.session, invoice["label"], PRICE_MONTH_UZS)
    assert answer.result == {"allow": True, "detail": {"receipt_type": 0, "items": [{
        "title": "1 month", "price": PRICE_MONTH_UZS, "count": 1, "code": IKPU, "package_code": PACKAGE,
        "vat_percent": 12}]}}
    assert detail_problem(answer.result, PRICE_MONTH_UZS) is None


PLAN_IKPU = "10399002001000000"
OWN_RECEIPT = PlanReceipt(title="Club access, 30 days", ikpu=PLAN_IKPU, vat_percent=0)


@pytest.fixture
def plans(request) -> Catalogue:
    """The repository's plans; with the parameter true, the month with its own receipt (`receipt = {...}`)."""
    return plans_with_month_receipt(OWN_RECEIPT if getattr(request, "param", False) else None)


@pytest.mark.parametrize("plans", [True], indirect=True)
async def test_a_plans_own_receipt_fields_reach_the_detail_over_the_shop_defaults(client, payme):
    month = await new_invoice(client)
    answer = await payme.check(client.session, month["label"], PRICE_MONTH_UZS)
    assert answer.result["detail"]["items"] == [{
        "title": "Club access, 30 days", "price": PRICE_MONTH_UZS, "count": 1, "code": PLAN_IKPU,
        "package_code": PACKAGE, "vat_percent": 0}], "the plan's title, IKPU and 0% VAT; the shop's package code"
    year = await new_invoice(client, plan="year")
    [item] = (await payme.check(client.session, year["label"], 35000000)).result["detail"]["items"]
    assert (item["title"], item["code"], item["vat_percent"]) == ("12 months", IKPU, 12)


@pytest.mark.parametrize("settings", [False], indirect=True)
async def test_check_answers_allow_alone_with_receipts_off(client, payme):
    invoice = await new_invoice(client)
    assert (await payme.check(client.session, invoice["label"], PRICE_MONTH_UZS)).result == {"allow": True}


async def test_wrong_amount_is_still_refused_with_receipts_on(client, payme):
    invoice = await new_invoice(client)
    assert error_code(await payme.check(client.session, invoice["label"], PRICE_MONTH_UZS + 1)) == -31001


@pytest.mark.parametrize("settings", [False], indirect=True)
async def test_a_fiscalising_kassa_refuses_a_check_without_detail(client, payme):
    payme.fiscal = True
    invoice = await new_invoice(client)
    _, answers = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    assert [a.method for a in answers] == ["CheckPerformTransaction"], "no transaction was created"
    assert payme.fiscal_refusals and "no detail" in payme.fiscal_refusals[0]
    assert await transactions() == []


def test_the_emulator_checks_the_sum_and_the_fields_of_a_detail():
    """Payme's own example (receipts.create): 505000 × 2 − 10000 + shipping 500000 = 1 500 000 tiyin."""
    item = {"discount": 10000, "title": "Помидоры", "price": 505000, "count": 2, "code": "00702001001000001",
            "units": 241092, "vat_percent": 15, "package_code": "123456"}
    detail = {"receipt_type": 0, "shipping": {"title": "Доставка", "price": 500000}, "items": [item]}
    assert detail_problem({"allow": True, "detail": detail}, 1_500_000) is None
    assert "add up" in (detail_problem({"allow": True, "detail": detail}, 1_500_001) or "")
    without_package = {**detail, "items": [{k: v for k, v in item.items() if k != "package_code"}]}
    assert "package_code" in (detail_problem({"detail": without_package}, 1_500_000) or "")
    assert "IKPU" in (detail_problem({"detail": {**detail, "items": [{**item, "code": "123"}]}}, 1_500_000) or "")


# ---- SetFiscalData and the payer's link


async def test_fiscal_kassa_pays_sends_fiscal_data_and_the_notice_carries_the_link(client, payme, worker, notifier):
    payme.fiscal = True
    invoice = await new_invoice(client, user_id=7)
    payme_id, answers = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    assert answers[-1].method == "PerformTransaction" and answers[-1].result and not payme.fiscal_refusals
    fiscal_call = payme.calls[-1]
    assert fiscal_call.method == "SetFiscalData" and fiscal_call.result == {"success": True}
    [tx] = await transactions()
    assert tx.fiscal_data["PERFORM"]["status_code"] == 0 and tx.fiscal_data["PERFORM"]["qr_code_url"]
    await worker.drain()
    [notice] = notifier.notices
    assert notice.user_id == 7 and notice.receipt_url == tx.fiscal_data["PERFORM"]["qr_code_url"]
    assert notifier.receipts == [], "the link went in the payment notice, not twice"


async def test_fiscal_data_after_the_notice_sends_one_follow_up(client, payme, worker, notifier):
    payme.fiscal, payme.send_fiscal_data = True, False
    invoice = await new_invoice(client, user_id=8)
    payme_id, _ = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    await worker.drain()
    [notice] = notifier.notices
    assert notice.receipt_url is None
    for _ in range(2):  # Payme repeats a call it got no answer to: the same success, no second message
        answer = await payme.call(client.session, "SetFiscalData",
                                  {"id": payme_id, "type": "PERFORM", "fiscal_data": FISCAL})
        assert answer.result == {"success": True}
        await worker.drain()
    [follow_up] = notifier.receipts
    assert (follow_up.user_id, follow_up.label, follow_up.url) == (8, invoice["label"], QR)
    assert await link_of(payme_id) == QR
    [tx] = await transactions()
    assert {k: v for k, v in tx.fiscal_data["PERFORM"].items() if k != "received_at"} == FISCAL


async def test_cancel_receipt_is_stored_apart_and_sends_nothing(client, payme, worker, notifier):
    invoice = await new_invoice(client)
    payme_id, _ = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    await worker.drain()
    cancel = {**FISCAL, "receipt_id": "122", "qr_code_url": QR.replace("r=121", "r=122")}
    answer = await payme.call(client.session, "SetFiscalData", {"id": payme_id, "type": "CANCEL",
                                                                "fiscal_data": cancel})
    assert answer.result == {"success": True}
    await worker.drain()
    [tx] = await transactions()
    assert set(tx.fiscal_data) == {"CANCEL"} and tx.fiscal_data["CANCEL"]["receipt_id"] == "122"
    assert notifier.receipts == [] and await link_of(payme_id) is None


async def test_a_refused_registration_is_stored_but_never_linked(client, payme, worker, notifier):
    invoice = await new_invoice(client)
    payme_id, _ = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    failed = {**FISCAL, "status_code": -1, "message": "OFD unavailable"}
    assert (await payme.call(client.session, "SetFiscalData", {"id": payme_id, "type": "PERFORM",
                                                               "fiscal_data": failed})).result == {"success": True}
    await worker.drain()
    assert await link_of(payme_id) is None and notifier.receipts == []
    assert notifier.notices[0].receipt_url is None


async def test_set_fiscal_data_with_a_wrong_key_or_none_changes_nothing(client, payme):
    invoice = await new_invoice(client)
    payme_id, _ = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    params = {"id": payme_id, "type": "PERFORM", "fiscal_data": FISCAL}
    for authorization in (basic_auth("wrong-" + PAYME_KEY), None, "Basic not-base64!"):
        answer = await payme.call(client.session, "SetFiscalData", params, authorization=authorization)
        assert answer.status == 200 and error_code(answer) == -32504
    [tx] = await transactions()
    assert tx.fiscal_data == {} and await link_of(payme_id) is None


async def test_set_fiscal_data_for_an_unknown_transaction_is_32001(client, payme):
    answer = await payme.call(client.session, "SetFiscalData",
                              {"id": new_payme_id(), "type": "PERFORM", "fiscal_data": FISCAL})
    assert error_code(answer) == -32001 and answer.body["error"]["data"] == "id"
    assert await PaymeTransaction.find_all().count() == 0


@pytest.mark.parametrize("params, field", [
    ({"type": "PERFORM", "fiscal_data": FISCAL}, "id"),
    ({"type": "REFUND", "fiscal_data": FISCAL}, "type"),
    ({"type": "PERFORM", "fiscal_data": "x"}, "fiscal_data"),
    ({"type": "PERFORM", "fiscal_data": {**FISCAL, "status_code": "0"}}, "fiscal_data.status_code"),
    ({"type": "PERFORM", "fiscal_data": {**FISCAL, "qr_code_url": "javascript:alert(1)"}},
     "fiscal_data.qr_code_url"),
    ({"type": "PERFORM", "fiscal_data": {**FISCAL, "receipt_id": True}}, "fiscal_data.receipt_id"),
    ({"type": "PERFORM", "fiscal_data": {**FISCAL, "message": "x" * 10_000}}, "fiscal_data.message"),
    ({"type": "PERFORM", "fiscal_data": {**FISCAL, "status_code": 10**30}}, "fiscal_data.status_code"),
])
async def test_malformed_set_fiscal_data_is_32602_naming_the_field(client, payme, params, field):
    invoice = await new_invoice(client)
    payme_id, _ = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    if field != "id":
        params = {"id": payme_id, **params}
    answer = await payme.call(client.session, "SetFiscalData", params)
    assert error_code(answer) == -32602 and answer.body["error"]["data"] == field
    [tx] = await transactions()
    assert tx.fiscal_data == {}


async def test_set_fiscal_data_not_json_is_a_parse_error(client):
    status, body = await rpc(client, None, raw=b'{"method": "SetFiscalData", "params": {')
    assert status == 200 and body["error"]["code"] == -32700
