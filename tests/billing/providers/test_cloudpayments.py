"""The CloudPayments module on its own: the reference's worked vectors, bodies, fields, answers, widget options,
and the API client against the emulator."""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from billing.errors import ProviderUnavailable
from billing.money import Money
from billing.providers.base import ProviderRejected, RawNotification
from billing.providers.cloudpayments import ApiClient, CloudPayments
from billing.providers.cloudpayments.protocol import (
    FORM,
    JSON,
    MAX_JSON_NESTING,
    Kind,
    Malformed,
    authentic,
    basic_auth,
    card_mask,
    format_amount,
    is_test_mode,
    money,
    parse_amount,
    parse_body,
    read_transaction,
    script_json,
    sign,
    widget_options,
)
from tests.cloudpayments_support import VECTOR_BODY, VECTOR_JSON
from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator, Payment
from webhook_server.http_transport import AiohttpTransport

SECRET = "test_api_secret"


# ---- the reference's worked vectors (cloudpayments.md 9) ------------------------------------------


def test_vector_9_1_basic_auth_header():
    assert basic_auth("pk_test", "test_api_secret") == "Basic cGtfdGVzdDp0ZXN0X2FwaV9zZWNyZXQ="


def test_vector_9_2_content_hmac_of_the_form_body():
    assert len(VECTOR_BODY) == 493
    assert sign(VECTOR_BODY, SECRET) == "ZFnWEzVKb2e/zAkAfMQSPdoYFgeDwS3Zk01ctNwlmyE="
    assert authentic({"Content-HMAC": "ZFnWEzVKb2e/zAkAfMQSPdoYFgeDwS3Zk01ctNwlmyE="}, VECTOR_BODY, SECRET)
    assert authentic({"content-hmac": "ZFnWEzVKb2e/zAkAfMQSPdoYFgeDwS3Zk01ctNwlmyE="}, VECTOR_BODY, SECRET)


def test_vector_9_2_hex_digest_is_the_wrong_format():
    hex_digest = hmac.new(SECRET.encode(), VECTOR_BODY, hashlib.sha256).hexdigest()
    assert hex_digest == "6459d613354a6f67bfcc09007cc4123dda18160783c12dd9934d5cb4dc259b21"
    assert not authentic({"Content-HMAC": hex_digest}, VECTOR_BODY, SECRET)


def test_vector_9_2_hmac_of_the_decoded_text_is_not_accepted_as_content_hmac():
    decoded = "DI2g/BjEhT8dPlUnXJZp5KPmEOols0HxB7SoDjvl1VA="  # the reference's HMAC of the decoded text
    assert not authentic({"Content-HMAC": decoded}, VECTOR_BODY, SECRET)
    assert not authentic({"X-Content-HMAC": sign(VECTOR_BODY, SECRET)}, VECTOR_BODY, SECRET), \
        "only Content-HMAC is trusted"


def test_vector_9_2_is_read_as_the_reference_says():
    tx = read_transaction(parse_body(VECTOR_BODY, FORM))
    assert (tx.transaction_id, tx.label, tx.amount, tx.test) == ("1234567", "inv-42", Money(29900, "RUB"), True)
    assert (tx.card, tx.token, tx.account_id, tx.subscription_id) == ("Visa •••• 4242", "tk_0123456789abcdef",
                                                                      "tg-100500", "")
    assert tx.occurred_at is not None and tx.occurred_at.isoformat() == "2024-05-01T12:30:00+00:00"


def test_vector_9_3_re_encoding_changes_the_hmac():
    re_encoded = VECTOR_BODY.replace(b"+", b"%20")
    assert sign(re_encoded, SECRET) == "1+Yql1ZXH18cLPu8SKY3vc+EA2okZlwe05P6XW+Mzxg="
    assert parse_body(re_encoded, FORM) == parse_body(VECTOR_BODY, FORM)
    assert urlencode(parse_body(re_encoded, FORM)).encode() == VECTOR_BODY, \
        "re-encoding gives the 9.2 body, not the one sent"
    assert not authentic({"Content-HMAC": sign(VECTOR_BODY, SECRET)}, re_encoded, SECRET)


def test_vector_9_4_json_body_is_signed_as_received():
    assert sign(VECTOR_JSON, SECRET) == "G7ZxUCVeNhAHUhhywI+6qTsRikUdB9nwPZlOtj9w8I8="
    fields = parse_body(VECTOR_JSON, "application/json; charset=utf-8")
    assert fields["Amount"] == "299.00" and fields["TransactionId"] == "1234567"
    assert sign(json.dumps(json.loads(VECTOR_JSON)).encode(), SECRET) != sign(VECTOR_JSON, SECRET)


# ---- bodies and fields ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"\xff", b"a=1&&b", b"a=1&a=2", b"=x&y"])
def test_malformed_forms_are_refused(body):
    with pytest.raises(Malformed):
        parse_body(body, FORM)


@pytest.mark.parametrize("body", [b"[1]", b"{", b'"text"', b"\xff"])
def test_malformed_json_is_refused(body):
    with pytest.raises(Malformed):
        parse_body(body, JSON)


def test_a_content_hmac_that_is_not_ascii_is_not_authentic():
    good = sign(VECTOR_BODY, SECRET)
    assert authentic({"Content-HMAC": good}, VECTOR_BODY, SECRET)
    for bad in ("\udcff\udcfe", good[:-1] + "\udcff", "З" + good[1:], good + "\x00"):  # as aiohttp decodes bytes
        assert not authentic({"Content-HMAC": bad}, VECTOR_BODY, SECRET)
    assert not authentic({"X-Content-HMAC": good}, VECTOR_BODY, SECRET), "only Content-HMAC counts"


def test_json_nesting_is_bounded():
    def data(depth: int) -> bytes:
        return b'{"Data":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"

    assert parse_body(data(MAX_JSON_NESTING), JSON)["Data"].startswith("[")
    for depth in (MAX_JSON_NESTING + 1, 5000):
        with pytest.raises(Malformed):
            parse_body(data(depth), JSON)


@pytest.mark.parametrize("literal", [b"1e999999999", b"9" * 4301, b"1.5e-9999"])
def test_json_numbers_past_their_bounds_are_never_amounts(literal):
    fields = parse_body(b'{"Amount":' + literal + b',"Currency":"RUB"}', JSON)
    with pytest.raises(Malformed):
        money(fields)


@pytest.mark.parametrize(("currency", "amount", "expected"), [
    ("RUB", "299.00", Money(29900, "RUB")), ("RUB", "299", Money(29900, "RUB")),
    ("UZS", "35000.00", Money(3500000, "unsettled:UZS")), ("XTR", "2.50", Money(250, "unsettled:XTR")),
    ("XTR", "250", Money(25000, "unsettled:XTR")), ("USD", "299.00", Money(29900, "unsettled:USD")),
])
def test_money_in_a_currency_the_shop_does_not_settle_in_is_no_invoice_currency(currency, amount, expected):
    assert money({"Amount": amount, "Currency": currency}) == expected
    assert money({"Amount": "299.00"}) == Money(29900, "RUB"), "CloudPayments' default currency"


def test_json_is_recognised_without_its_content_type():
    assert parse_body(VECTOR_JSON, None)["InvoiceId"] == "inv-42"
    assert parse_body(VECTOR_JSON, "text/plain")["Amount"] == "299.00"


def test_json_values_read_like_form_values():
    fields = parse_body(b'{"TestMode":true,"Amount":10,"Data":{"a":[1]},"Email":null,"Rate":1.50}', JSON)
    assert fields == {"TestMode": "1", "Amount": "10", "Data": '{"a":[1]}', "Email": "", "Rate": "1.50"}
    assert is_test_mode(fields) and not is_test_mode({"TestMode": "0"}) and not is_test_mode({})


@pytest.mark.parametrize(("text", "minor"), [("299.00", 29900), ("299", 29900), ("299.5", 29950), ("0.01", 1),
                                             ("123456789012.99", 12345678901299)])
def test_amounts_are_read_exactly(text, minor):
    assert parse_amount(text) == minor
    assert parse_amount(format_amount(minor)) == minor


@pytest.mark.parametrize("text", ["", "1e3", "299,00", "-1", "1.001", " 1", "NaN", "٣"])
def test_bad_amounts_are_refused(text):
    with pytest.raises(Malformed):
        parse_amount(text)


def test_card_mask_shows_only_brand_and_last_four():
    assert card_mask({"CardType": "MasterCard", "CardLastFour": "4444"}) == "MasterCard •••• 4444"
    assert card_mask({"CardType": "<b>", "CardLastFour": "1234"}) == "b •••• 1234"
    assert card_mask({"CardLastFour": "1234"}) == "Card •••• 1234"
    assert card_mask({"CardType": "Visa", "CardLastFour": "42"}) is None


# ---- widget options -------------------------------------------------------------------------------


def test_widget_options_carry_label_account_and_exact_amount():
    options = widget_options(public_id="pk_1", label="inv_1", account_id="100500", amount=Money(29950, "RUB"),
                             description="1 month")
    assert options["invoiceId"] == "inv_1" and options["accountId"] == "100500"
    assert options["amount"] == Decimal("299.50") and options["data"] == {"label": "inv_1"}
    recurrent = widget_options(public_id="pk_1", label="inv_1", account_id="1", amount=Money(100, "RUB"),
                               description="x", recurrent_days=30)
    assert recurrent["data"]["CloudPayments"] == {"recurrent": {"interval": "Day", "period": 30}}


def test_script_json_cannot_close_its_script_element_and_keeps_amounts_exact():
    text = script_json({"description": "</script><script>alert(1)</script>\x00decimal:5", "amount": Decimal("299.50")})
    assert "</" not in text and "<" not in text
    assert '"amount":299.50' in text
    assert json.loads(text)["description"] == "</script><script>alert(1)</script>decimal:5"


def test_page_form_posts_the_signed_link_to_our_widget_page():
    provider = CloudPayments(public_id="pk", api_secret=SECRET, client=None)  # type: ignore[arg-type]
    form = provider.page_form(label="inv_1", amounts={"RUB": 29900}, title="t",
                              success_url="https://pay.example.org/pay/inv_1?exp=1700&lang=uz&sig=ab&returned=1")
    assert form is not None and form.method == "post"
    assert form.action == "https://pay.example.org/pay/inv_1/cloudpayments"
    assert form.fields == {"exp": "1700", "lang": "uz", "sig": "ab"}
    assert provider.page_form(label="inv_1", amounts={"UZS": 100}, title="t", success_url="https://x/pay/i") is None


# ---- answers --------------------------------------------------------------------------------------


async def test_bad_signature_is_answered_in_cloudpayments_format_before_parsing():
    provider = CloudPayments(public_id="pk", api_secret=SECRET, client=None)  # type: ignore[arg-type]
    raw = RawNotification(path="/notify/cloudpayments/check", headers={}, body=b"\xff not even a form",
                          remote="203.0.113.1")
    for kind, status in ((Kind.CHECK, 200), (Kind.PAY, 401), (Kind.REFUND, 401)):
        answer, outcome = await provider.handle(kind, raw, ledger=None, reversals=None, now=None)  # type: ignore[arg-type]
        assert (answer.status, json.loads(answer.body), answer.content_type) == (status, {"code": 13},
                                                                                 "application/json")
        assert outcome == "bad_signature"


# ---- the API client against the emulator ----------------------------------------------------------


@pytest.fixture
async def api() -> tuple[ApiClient, CloudPaymentsEmulator]:
    emulator = CloudPaymentsEmulator(public_id="pk_test", api_secret=SECRET, notify_base="", deliver=False)
    server = TestServer(emulator.app())
    await server.start_server()
    session = ClientSession()
    client = ApiClient(AiohttpTransport(session), str(server.make_url("")), "pk_test", SECRET)
    emulator.transactions[77] = Payment(77, "inv_1", "1", Money(29900, "RUB"), "Completed", "tk")
    yield client, emulator
    await session.close()
    await server.close()


async def test_api_refund_sends_basic_auth_exact_amount_and_request_id(api):
    client, emulator = api
    body = await client.refund("77", Money(29900, "RUB"))
    assert body["Success"] is True and body["Model"]["TransactionId"]
    assert emulator.api_calls == [("/payments/refund", {"TransactionId": "77", "Amount": "299.00"},
                                   "ymds-refund-77-29900")]
    again = await client.refund("77", Money(29900, "RUB"))
    assert again == body and emulator.transactions[77].refunded == 29900, "the repeated request refunds once"


async def test_api_refusal_is_provider_rejected(api):
    client, emulator = api
    with pytest.raises(ProviderRejected, match="exceeds"):
        await client.refund("77", Money(30000, "RUB"))
    with pytest.raises(ProviderRejected, match="not authorized"):
        await client.confirm("77", Money(29900, "RUB"))
    emulator.api_secret = "other"
    with pytest.raises(ProviderRejected, match="401"):
        await client.refund("77", Money(100, "RUB"))


async def test_api_outage_is_provider_unavailable(api):
    client, emulator = api
    emulator.down = True
    with pytest.raises(ProviderUnavailable):
        await client.refund("77", Money(100, "RUB"))
    async with ClientSession() as session:
        nowhere = ApiClient(AiohttpTransport(session), "http://127.0.0.1:9", "pk_test", SECRET)
        with pytest.raises(ProviderUnavailable):
            await nowhere.void("77")


class FixedTransport:
    def __init__(self, status: int, body: object) -> None:
        self.answer = (status, body)

    async def post_form(self, url, data, headers):
        return self.answer


@pytest.mark.parametrize(("status", "body", "error"), [
    (200, None, ProviderUnavailable), (200, {"Message": "x"}, ProviderUnavailable), (429, None, ProviderUnavailable),
    (502, {"Success": True}, ProviderUnavailable), (404, None, ProviderRejected),
    (200, {"Success": False, "Message": None, "Model": {"CardHolderMessage": "Недостаточно средств"}},
     ProviderRejected),
])
async def test_api_answers_map_to_what_the_caller_should_do(status, body, error):
    client = ApiClient(FixedTransport(status, body), "http://api", "pk", SECRET)  # type: ignore[arg-type]
    with pytest.raises(error):
        await client.confirm("1", Money(100, "RUB"))


def test_test_payments_are_granted_in_development_unless_the_setting_says_otherwise():
    from billing.providers.cloudpayments import accepts_test_payments

    assert accepts_test_payments(None, development=True) and not accepts_test_payments(None, development=False)
    assert accepts_test_payments(True, development=False) and not accepts_test_payments(False, development=True)
