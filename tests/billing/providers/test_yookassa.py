"""The YooKassa protocol module: the reference's worked vectors (TV1-TV7), parsing, and the API client's
answers to every kind of reply, through a recording transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import ValidationError

from billing.errors import ProviderUnavailable
from billing.money import Money
from billing.networks import parse_networks
from billing.providers.base import NotificationRejected, ProviderHTTPError, ProviderRejected
from billing.providers.yookassa import YooKassa
from billing.providers.yookassa.protocol import (
    ApiClient,
    authorization,
    create_key,
    format_amount,
    idempotence_key,
    method_display,
    parse_notification,
    payment_event,
    payment_request,
    read_amount,
    sender_allowed,
)
from billing.refunds import RefundStatus
from db import init_db
from settings import YOOKASSA_PUBLISHED_IPS, Settings

API = "https://api.yookassa.ru/v3"


@pytest.fixture
async def memory_db(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """An in-memory database of this test's own: the refund module keeps pending refunds in MongoDB."""
    client = await init_db("memory://", f"test_yookassa_{request.node.name}"[:60])
    yield
    client.close()
TV6_PAYMENT = {
    "id": "2f6a1c3e-000f-5000-8000-1a2b3c4d5e6f", "status": "succeeded", "paid": True,
    "amount": {"value": "149.00", "currency": "RUB"}, "income_amount": {"value": "144.83", "currency": "RUB"},
    "description": "Subscription 30 days, invoice inv_7Kq2xZ",
    "recipient": {"account_id": "123456", "gateway_id": "2190001"},
    "payment_method": {"type": "bank_card", "id": "2f6a1c3e-000f-5000-8000-1a2b3c4d5e6f", "saved": True,
                       "title": "Bank card *4444",
                       "card": {"first6": "555555", "last4": "4444", "expiry_month": "12", "expiry_year": "2030",
                                "card_type": "MasterCard", "issuer_country": "RU"}},
    "captured_at": "2026-03-01T10:15:42.120Z", "created_at": "2026-03-01T10:14:03.551Z", "test": True,
    "refunded_amount": {"value": "0.00", "currency": "RUB"}, "refundable": True,
    "metadata": {"label": "inv_7Kq2xZ"},
    "authorization_details": {"rrn": "603668680243", "auth_code": "000000", "three_d_secure": {"applied": False}},
}
TV6 = {"type": "notification", "event": "payment.succeeded", "object": TV6_PAYMENT}
TV4_BODY = ('{"amount":{"value":"149.00","currency":"RUB"},"capture":true,"confirmation":{"type":"redirect",'
            '"return_url":"https://pay.example.org/return/inv_7Kq2xZ"},"description":"Subscription 30 days, invoice '
            'inv_7Kq2xZ","metadata":{"label":"inv_7Kq2xZ"},"save_payment_method":true}')


class RecordingTransport:
    """HttpTransport that records each request and answers from a list (or raises a network error)."""

    def __init__(self, *answers: tuple[int, Any] | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    async def post_form(self, url: str, data: Any, headers: Any) -> tuple[int, Any]:
        raise AssertionError("YooKassa speaks JSON only")

    async def request(self, method: str, url: str, *, json: Any = None, headers: Any = None,
                      auth: Any = None) -> tuple[int, Any]:
        self.calls.append({"method": method, "url": url, "json": json, "headers": dict(headers or {}), "auth": auth})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(*answers: tuple[int, Any] | Exception) -> tuple[ApiClient, RecordingTransport]:
    transport = RecordingTransport(*answers)
    return ApiClient(transport, API, "123456", "test_abc"), transport


def test_tv1_authorization_header():
    assert authorization("123456", "test_abc") == "Basic MTIzNDU2OnRlc3RfYWJj"


@pytest.mark.parametrize(("minor", "value"), [(14900, "149.00"), (5, "0.05"), (100000, "1000.00"), (9999, "99.99"),
                                              (1, "0.01")])
def test_tv2_kopecks_to_value(minor, value):
    assert format_amount(minor) == value


@pytest.mark.parametrize(("value", "minor"), [("149.00", 14900), ("0.05", 5), ("350000.00", 35000000)])
def test_tv2_value_to_kopecks(value, minor):
    assert read_amount({"value": value, "currency": "RUB"}) == Money(minor, "RUB")


@pytest.mark.parametrize("value", ["0.001", "1e3", "-1.00", "1,00", " 1.00", "", "NaN", 149.0, 149, None])
def test_amounts_that_are_not_exact_decimal_strings_are_refused(value):
    assert read_amount({"value": value, "currency": "RUB"}) is None


def test_amount_needs_a_currency_code():
    assert read_amount({"value": "1.00", "currency": "rub"}) is None
    assert read_amount({"value": "1.00"}) is None and read_amount("1.00") is None


ALLOWED = ["185.71.76.0", "185.71.76.31", "185.71.77.17", "77.75.153.127", "77.75.154.128", "77.75.154.255",
           "77.75.156.11", "77.75.156.35", "2a02:5180:0:1509::1", "2a02:5180:ffff::1", "::ffff:185.71.76.10"]
REFUSED = ["185.71.76.32", "77.75.153.128", "77.75.154.127", "77.75.156.12", "2a02:5181::1", "127.0.0.1",
           "::ffff:127.0.0.1", "", "not-an-address", "185.71.76.10, 127.0.0.1"]


@pytest.mark.parametrize("address", ALLOWED)
def test_tv3_published_addresses_are_allowed(address):
    assert sender_allowed(address, parse_networks(Settings(_env_file=None).yookassa_notify_ips))


@pytest.mark.parametrize("address", REFUSED)
def test_tv3_other_addresses_are_refused(address):
    assert not sender_allowed(address, parse_networks(YOOKASSA_PUBLISHED_IPS))


def test_notify_ips_setting_refuses_an_empty_list_and_bad_entries():
    assert Settings(_env_file=None, yookassa_notify_ips="127.0.0.1, ::1").yookassa_notify_ips == ["127.0.0.1", "::1"]
    for bad in ("", " , ", "127.0.0.1,localhost", "300.1.1.1"):
        with pytest.raises(ValidationError, match="yookassa_notify_ips"):
            Settings(_env_file=None, yookassa_notify_ips=bad)


def test_tv5_idempotence_key_of_the_first_attempt():
    assert create_key("inv_7Kq2xZ", 0) == "df8e0377-1365-5cab-b41a-cd8d9872eea3"
    keys = {create_key("inv_7Kq2xZ", attempt) for attempt in range(3)} | {idempotence_key("refund", "inv_7Kq2xZ")}
    assert len(keys) == 4 and all(len(key) <= 64 for key in keys)


async def test_tv4_create_request():
    api, transport = client((200, {**TV6_PAYMENT, "status": "pending"}))
    body = payment_request(amount=Money(14900, "RUB"), return_url="https://pay.example.org/return/inv_7Kq2xZ",
                           description="Subscription 30 days, invoice inv_7Kq2xZ", label="inv_7Kq2xZ", save_method=True)
    await api.create_payment(body, create_key("inv_7Kq2xZ", 0))
    [call] = transport.calls
    assert (call["method"], call["url"]) == ("POST", f"{API}/payments")
    assert call["headers"] == {"Authorization": "Basic MTIzNDU2OnRlc3RfYWJj",
                               "Idempotence-Key": "df8e0377-1365-5cab-b41a-cd8d9872eea3"}
    assert call["json"] == json.loads(TV4_BODY)


def test_description_is_cut_to_128_characters():
    body = payment_request(amount=Money(1, "RUB"), return_url="https://x", description="x" * 300, label="l",
                           save_method=False)
    assert len(body["description"]) == 128 and body["save_payment_method"] is False


def test_tv6_notification_and_the_payment_it_names():
    notice = parse_notification(json.dumps(TV6).encode())
    assert (notice.event, notice.object_id, notice.status, notice.amount) == (
        "payment.succeeded", TV6_PAYMENT["id"], "succeeded", Money(14900, "RUB"))
    event = payment_event(TV6_PAYMENT)
    assert (event.provider, event.operation_id, event.label, event.amount) == (
        "yookassa", TV6_PAYMENT["id"], "inv_7Kq2xZ", Money(14900, "RUB"))
    assert event.net_amount == Money(14483, "RUB")
    assert event.occurred_at == datetime(2026, 3, 1, 10, 15, 42, 120000, tzinfo=UTC)
    assert (event.payment_method, event.payment_token) == ("MasterCard •••• 4444", TV6_PAYMENT["id"])


def test_unsaved_method_gives_no_token_and_a_wallet_shows_no_number():
    unsaved = {**TV6_PAYMENT, "payment_method": {**TV6_PAYMENT["payment_method"], "saved": False}}
    assert (payment_event(unsaved).payment_method, payment_event(unsaved).payment_token) == (None, None)
    wallet = {"type": "yoo_money", "id": "pm-1", "saved": True, "title": "YooMoney wallet 410011758831136"}
    assert method_display(wallet) == "yoo money"
    assert payment_event({**TV6_PAYMENT, "payment_method": wallet}).payment_token == "pm-1"


def test_payment_without_label_has_an_empty_label():
    assert payment_event({**TV6_PAYMENT, "metadata": {}}).label == ""
    assert payment_event({**TV6_PAYMENT, "metadata": {"label": 5}}).label == ""


@pytest.mark.parametrize("body", [
    b"not json", b"\xff\xfe", b"[]", b'"notification"', b"{}", b'{"type":"notification"}',
    b'{"type":"notice","event":"payment.succeeded","object":{"id":"p1"}}',
    b'{"type":"notification","event":"payment.succeeded","object":[]}',
    b'{"type":"notification","event":5,"object":{"id":"p1"}}',
    b'{"type":"notification","event":"payment.succeeded","object":{"id":5}}',
    b'{"type":"notification","event":"payment.succeeded","object":{"id":"../refunds/r1"}}',
    b'{"type":"notification","event":"payment.succeeded","object":{"id":"p1?x=1"}}',
    b'{"type":"notification","event":"payment.succeeded","object":{"id":""}}',
    b"[" * 100000,
])
def test_malformed_notifications_are_refused(body):
    with pytest.raises(NotificationRejected):
        parse_notification(body)


async def test_tv7_error_body_is_a_refusal_naming_the_problem():
    api, _ = client((400, {"type": "error", "id": "ab5a11cd-13cc-4e33-af8b-75a74e18dd09", "code": "invalid_request",
                           "description": "Idempotence key duplicated", "parameter": "Idempotence-Key"}))
    with pytest.raises(ProviderRejected, match="invalid_request Idempotence key duplicated Idempotence-Key"):
        await api.create_payment({"amount": {}}, "k")


@pytest.mark.parametrize("answer", [(500, {"type": "error", "code": "internal_server_error"}), (502, None),
                                    (202, {"type": "processing", "retry_after": 1800}), (429, {}),
                                    (200, None), (200, {"no": "id"}), ProviderHTTPError("timeout")])
async def test_outcome_unknown_answers_are_unavailable_not_refused(answer):
    api, _ = client(answer)
    with pytest.raises(ProviderUnavailable):
        await api.create_payment({}, "k")


@pytest.mark.parametrize("status", [401, 403, 400])
async def test_credentials_and_request_problems_are_refusals(status):
    api, _ = client((status, {"type": "error", "code": "invalid_credentials"}))
    with pytest.raises(ProviderRejected, match=str(status)):
        await api.get_payment("p1")


async def test_get_of_an_object_the_shop_does_not_have_is_none():
    api, transport = client((404, {"type": "error", "code": "not_found"}))
    assert await api.get_refund("r-1") is None
    assert transport.calls[0]["url"] == f"{API}/refunds/r-1" and "Idempotence-Key" not in transport.calls[0]["headers"]


async def test_a_refund_yookassa_cancels_at_once_is_a_refusal_with_its_reason(memory_db):
    refund = {"id": "r1", "payment_id": "p1", "status": "canceled",
              "cancellation_details": {"party": "yoo_money", "reason": "rejected_by_payee"}}
    transport = RecordingTransport((200, refund))
    provider = YooKassa(shop_id="123456", secret_key="test_abc", api_url=API, transport=transport,
                        notify_networks=[])
    with pytest.raises(ProviderRejected, match="rejected_by_payee"):
        await provider.refund(operation_id="p1", amount=Money(29900, "RUB"), label="inv_1")
    (call,) = transport.calls
    assert call["json"] == {"payment_id": "p1", "amount": {"value": "299.00", "currency": "RUB"},
                            "description": "Refund of invoice inv_1"}
    assert call["headers"]["Idempotence-Key"] == idempotence_key("refund", "p1")


async def test_a_pending_refund_is_kept_and_answered_without_asking_again(memory_db):
    pending = {"id": "r1", "payment_id": "p1", "status": "pending"}
    transport = RecordingTransport((200, pending))
    provider = YooKassa(shop_id="123456", secret_key="test_abc", api_url=API, transport=transport,
                        notify_networks=[])
    first = await provider.refund(operation_id="p1", amount=Money(29900, "RUB"), label="inv_1")
    again = await provider.refund(operation_id="p1", amount=Money(29900, "RUB"), label="inv_1")
    assert (first.status, first.refund_id) == (again.status, again.refund_id) == (RefundStatus.PENDING, "r1")
    assert len(transport.calls) == 1


def test_page_form_posts_the_signed_link_back_to_us():
    provider = YooKassa(shop_id="1", secret_key="s", api_url=API, transport=RecordingTransport(), notify_networks=[])
    form = provider.page_form(label="inv_1", amounts={"RUB": 100}, title="t",
                              success_url="https://pay.example.org/pay/inv_1?exp=9&lang=ru&sig=ab&returned=1")
    assert form is not None and (form.action, form.method) == ("/pay/inv_1/yookassa", "post")
    assert form.fields == {"exp": "9", "lang": "ru", "sig": "ab"}
    assert provider.page_form(label="inv_1", amounts={"UZS": 100}, title="t",
                              success_url="https://pay.example.org/pay/inv_1?exp=9&sig=ab") is None


async def test_payments_list_asks_for_the_period_in_utc_milliseconds_and_follows_the_cursor():
    api, transport = client((200, {"type": "list", "items": [{"id": "p2"}, {"id": "p1"}], "next_cursor": "c2"}),
                            (200, {"type": "list", "items": []}))
    start = datetime(2026, 3, 1, 13, 14, 3, 551000, tzinfo=timezone(timedelta(hours=3)))
    end = datetime(2026, 3, 2, 10, 14, 3, tzinfo=UTC)
    items, cursor = await api.list_payments(created_from=start, created_before=end, status="succeeded")
    assert ([item["id"] for item in items], cursor) == (["p2", "p1"], "c2")
    assert await api.list_payments(created_from=start, created_before=end, status="succeeded",
                                   cursor=cursor) == ([], None)
    first, second = (urlsplit(call["url"]) for call in transport.calls)
    assert first.path == "/v3/payments" and dict(parse_qsl(first.query)) == {
        "created_at.gte": "2026-03-01T10:14:03.551Z", "created_at.lt": "2026-03-02T10:14:03.000Z",
        "status": "succeeded", "limit": "100"}
    assert dict(parse_qsl(second.query))["cursor"] == "c2"
    assert [call["method"] for call in transport.calls] == ["GET", "GET"]
    assert "Idempotence-Key" not in transport.calls[0]["headers"]


@pytest.mark.parametrize(("answer", "error"), [((200, {"type": "error"}), ProviderUnavailable),
                                               ((500, None), ProviderUnavailable),
                                               ((401, {"code": "invalid_credentials"}), ProviderRejected)])
async def test_payments_list_answer_that_is_not_a_list_is_raised(answer, error):
    api, _ = client(answer)
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(error):
        await api.list_payments(created_from=moment, created_before=moment, status="succeeded")
