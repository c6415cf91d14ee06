"""The CloudPayments emulator on its own: its wire code against the reference's worked vectors (§9), its
independence from billing/providers, and its failure modes (no Check, lost notifications, /payments/find,
refunds counted) over real HTTP."""

from __future__ import annotations

import ast
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from billing.money import Money
from tests.cloudpayments_support import VECTOR_BODY, VECTOR_JSON
from webhook_server.emulators import cloudpayments as emulator_module, cloudpayments_wire as wire
from webhook_server.emulators.cloudpayments import LOST, CloudPaymentsEmulator, Payment
from webhook_server.emulators.cloudpayments_wire import Kind

SECRET = "test_api_secret"
PUBLIC_ID = "pk_test"
RUB_299 = Money(29900, "RUB")


# ---- the reference's vectors (cloudpayments.md §9) --------------------------------------------------


def test_vector_9_1_basic_auth():
    assert wire.basic_auth("pk_test", "test_api_secret") == "Basic cGtfdGVzdDp0ZXN0X2FwaV9zZWNyZXQ="


def test_vector_9_2_the_pay_body_is_written_byte_for_byte_and_signed_in_base64():
    fields = wire.transaction_fields(transaction_id=1234567, amount=RUB_299, label="inv-42", account_id="tg-100500",
                                     token="tk_0123456789abcdef", description="Pro plan",
                                     occurred_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC))
    fields.update(Name="IVAN PETROV", Email="user@example.com")  # the payer's own, as in the vector
    body = wire.form_body(fields)
    assert body == VECTOR_BODY and len(body) == 493
    headers = wire.notification_headers(body, SECRET)
    assert headers["Content-HMAC"] == "ZFnWEzVKb2e/zAkAfMQSPdoYFgeDwS3Zk01ctNwlmyE="
    assert headers["X-Content-HMAC"] == "DI2g/BjEhT8dPlUnXJZp5KPmEOols0HxB7SoDjvl1VA="
    assert headers["Content-Type"].startswith("application/x-www-form-urlencoded")


def test_vector_9_3_the_re_encoded_body_has_its_own_hmac():
    re_encoded = VECTOR_BODY.replace(b"+", b"%20")
    assert wire.content_hmac(re_encoded, SECRET) == "1+Yql1ZXH18cLPu8SKY3vc+EA2okZlwe05P6XW+Mzxg="


def test_vector_9_4_the_json_body_writes_numbers_as_numbers():
    body = wire.json_body({"TransactionId": "1234567", "Amount": "299.00", "Currency": "RUB", "InvoiceId": "inv-42",
                           "Status": "Completed"})
    assert body == VECTOR_JSON
    assert wire.content_hmac(body, SECRET) == "G7ZxUCVeNhAHUhhywI+6qTsRikUdB9nwPZlOtj9w8I8="
    headers = wire.notification_headers(body, SECRET, wire.JSON)
    assert headers["Content-HMAC"] == headers["X-Content-HMAC"] == "G7ZxUCVeNhAHUhhywI+6qTsRikUdB9nwPZlOtj9w8I8="


@pytest.mark.parametrize(("text", "minor"), [("299.00", 29900), ("299", 29900), ("299.5", 29950), ("0.01", 1)])
def test_amounts_are_read_exactly(text, minor):
    assert wire.minor_units(text) == minor and wire.minor_units(wire.decimal_text(minor)) == minor


@pytest.mark.parametrize("text", ["", "1e3", "299,00", "-1", "1.001", "NaN"])
def test_other_amounts_are_not_amounts(text):
    assert wire.minor_units(text) is None


def test_the_emulator_imports_nothing_of_the_provider_it_stands_in_for():
    """Its signing and formats are its own (written from the reference), never billing/providers' code."""
    for module in (emulator_module, wire):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        assert not [name for name in imported if name.startswith("billing.providers")], module.__name__
        assert imported, "the check must see the module's imports"


# ---- failure modes over real HTTP -------------------------------------------------------------------


class Shop:
    """A stand-in for our server: records every notification it gets, answers {"code": 0}."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, str]]] = []

    async def notify(self, request: web.Request) -> web.Response:
        body = await request.read()
        fields = wire.read_request(body, request.headers.get("Content-Type"))
        assert fields is not None
        self.received.append((request.match_info["kind"], fields, dict(request.headers)))
        assert request.headers["Content-HMAC"] == wire.content_hmac(body, SECRET)
        return web.json_response({"code": 0})


@pytest.fixture
async def running() -> AsyncIterator[tuple[CloudPaymentsEmulator, Shop, str]]:
    shop = Shop()
    shop_app = web.Application()
    shop_app.router.add_post("/notify/cloudpayments/{kind}", shop.notify)
    shop_server = TestServer(shop_app)
    await shop_server.start_server()
    emulator = CloudPaymentsEmulator(public_id=PUBLIC_ID, api_secret=SECRET,
                                     notify_base=str(shop_server.make_url("/notify/cloudpayments")))
    server = TestServer(emulator.app())
    await server.start_server()
    yield emulator, shop, str(server.make_url("")).rstrip("/")
    await server.close()
    await shop_server.close()


def widget_options(label: str = "inv_1", amount: str = "299.00") -> dict[str, str]:
    return {"publicId": PUBLIC_ID, "amount": amount, "currency": "RUB", "invoiceId": label, "accountId": "7"}


async def test_a_widget_payment_sends_check_then_pay(running):
    emulator, shop, _ = running
    result = await emulator.pay_widget(widget_options())
    assert result["success"]
    assert [kind for kind, _, _ in shop.received] == ["check", "pay"]
    assert shop.received[1][1]["TransactionId"] == str(result["transactionId"])


async def test_a_terminal_without_check_goes_straight_to_pay(running):
    emulator, shop, url = running
    async with ClientSession() as session:
        async with session.post(f"{url}/control/notifications", json={"skip_check": True}) as response:
            assert response.status == 200 and (await response.json())["skip_check"] is True
    result = await emulator.pay_widget(widget_options())
    assert result["success"] and [kind for kind, _, _ in shop.received] == ["pay"]


async def test_lost_notifications_are_kept_and_arrive_late(running):
    emulator, shop, url = running
    async with ClientSession() as session:
        async with session.post(f"{url}/control/notifications", json={"drop": ["pay"]}) as response:
            assert (await response.json())["drop"] == ["pay"]
        result = await emulator.pay_widget(widget_options())
        assert result["success"], "Check was answered; the money is taken"
        assert [kind for kind, _, _ in shop.received] == ["check"]
        assert [(kind, fields["TransactionId"]) for kind, fields in emulator.dropped] == [
            (Kind.PAY, str(result["transactionId"]))]
        async with session.post(f"{url}/control/notifications/redeliver") as response:
            assert (await response.json())["redelivered"] == 1
    assert [kind for kind, _, _ in shop.received] == ["check", "pay"] and emulator.dropped == []


async def test_a_lost_check_declines_the_payment(running):
    emulator, shop, _ = running
    emulator.drop_notifications()
    result = await emulator.pay_widget(widget_options())
    assert not result["success"] and "did not answer" in result["reason"]
    assert shop.received == [] and emulator.transactions == {} and emulator.replies == []
    assert await emulator.notify(Kind.PAY, {"TransactionId": "1"}) is LOST


async def test_bad_control_bodies_are_refused(running):
    emulator, _, url = running
    async with ClientSession() as session:
        for body in ({"drop": ["payout"]}, {"drop": "pay"}, {"skip_check": "yes"}, [1]):
            async with session.post(f"{url}/control/notifications", json=body) as response:
                assert response.status == 400, body
    assert emulator.drop == set() and emulator.skip_check is False


async def api(url: str, path: str, fields: dict[str, str], request_id: str | None = None) -> dict:
    headers = {"Authorization": wire.basic_auth(PUBLIC_ID, SECRET)}
    if request_id:
        headers["X-Request-ID"] = request_id
    async with ClientSession() as session:
        async with session.post(f"{url}{path}", data=fields, headers=headers) as response:
            assert response.status == 200
            return await response.json()


async def test_find_answers_the_latest_transaction_of_an_invoice(running):
    emulator, _, url = running
    assert await api(url, "/payments/find", {"InvoiceId": "inv_1"}) == {
        "Success": False, "Message": "Not found", "Model": None}
    emulator.transactions[11] = Payment(11, "inv_1", "7", RUB_299, wire.DECLINED, "",
                                        reason=(5051, "InsufficientFunds"))
    declined = await api(url, "/payments/find", {"InvoiceId": "inv_1"})
    assert declined["Success"] is False and declined["Model"]["ReasonCode"] == 5051
    emulator.transactions[12] = Payment(12, "inv_1", "7", RUB_299, wire.COMPLETED, "tk_1")
    emulator.transactions[13] = Payment(13, "inv_2", "7", RUB_299, wire.AUTHORIZED, "tk_2")
    found = await api(url, "/payments/find", {"InvoiceId": "inv_1"})
    assert found["Success"] is True
    model = found["Model"]
    assert (model["TransactionId"], model["InvoiceId"], model["Status"], model["Amount"]) == (12, "inv_1", "Completed",
                                                                                             299.0)
    held = await api(url, "/payments/find", {"InvoiceId": "inv_2"})
    assert (held["Success"], held["Model"]["Status"]) == (True, "Authorized")


async def test_refunds_are_counted_once_per_refund_made(running):
    emulator, shop, url = running
    emulator.transactions[21] = Payment(21, "inv_1", "7", RUB_299, wire.COMPLETED, "tk_1")
    fields = {"TransactionId": "21", "Amount": "299.00"}
    first = await api(url, "/payments/refund", fields, request_id="r-1")
    assert await api(url, "/payments/refund", fields, request_id="r-1") == first, "a repeated request id"
    assert (await api(url, "/payments/refund", fields, request_id="r-2"))["Success"] is False, "never more than paid"
    assert [(refund.payment_id, refund.amount) for refund in emulator.refunds] == [(21, 29900)]
    [(kind, notice, _)] = shop.received
    assert (kind, notice["PaymentTransactionId"], notice["TransactionId"]) == (
        "refund", "21", str(first["Model"]["TransactionId"]))


async def test_json_notifications_are_signed_over_their_own_text(running):
    emulator, shop, _ = running
    emulator.content_type = wire.JSON
    await emulator.pay_widget(widget_options())
    kind, fields, headers = shop.received[-1]
    assert kind == "pay" and headers["Content-Type"].startswith("application/json")
    assert json.loads(wire.json_body(fields))["TransactionId"] == int(fields["TransactionId"])
