"""POST /notify/cloudpayments/{kind} through real HTTP, the real Redis, a real RQ worker and the emulator."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta

import pytest

from billing.money import Money
from billing.providers.cloudpayments.notifications import STEPS
from billing.providers.cloudpayments.protocol import MAX_JSON_NESTING, Kind, Status
from db import InvoiceStatus, OperationStatus, Subscription
from db.cloudpayments import CloudPaymentsNotice
from tests.cloudpayments_support import (  # noqa: F401 - fixtures
    CP_SECRET,
    MONTH,
    PRICE_MONTH_RUB,
    cp,
    cp_server,
    give_consent,
    invoice_of,
    pay_fields,
    post,
    reconfigure,
    settings,
)
from tests.helpers import get_json, new_invoice, operations
from tests.raw_http import raw_request
from webhook_server.emulators.cloudpayments_wire import (
    FORM,
    JSON,
    cancel_fields,
    content_hmac,
    fail_fields,
    form_body,
    notification_headers,
    recurrent_fields,
    refund_fields,
)
from webhook_server.keys import PROVIDERS

OK = {"code": 0}


async def paid_through_pay(client, worker, user_id: int, *, consented: datetime | None = None,
                           **options) -> tuple[dict, dict[str, str]]:
    """A Pay of a new invoice; `consented`: the payer chose "pay and renew" then, so the card token is kept."""
    invoice = await new_invoice(client, user_id=user_id)
    if consented is not None:
        await give_consent(invoice["label"], consented)
    fields = pay_fields(invoice["label"], user_id, token="tk_secret_token_value", **options)
    assert await post(client, Kind.PAY, fields) == (200, OK)
    await worker.drain()
    return invoice, fields


# ---- Check ------------------------------------------------------------------------------------


async def test_check_accepts_a_payable_invoice_and_changes_nothing(client, queues):
    invoice = await new_invoice(client, user_id=5)
    assert await post(client, Kind.CHECK, pay_fields(invoice["label"], 5, pay=False)) == (200, OK)
    assert await operations() == [] and queues.depth() == 0
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING


async def test_check_answers_the_references_codes(client, worker, clock):
    invoice = await new_invoice(client, user_id=5)
    label = invoice["label"]
    cases = [
        (pay_fields("inv_unknown", 5, pay=False), 10),
        (pay_fields("", 5, pay=False), 10),
        (pay_fields(label, 6, pay=False), 11),
        (pay_fields(label, 5, amount=Money(PRICE_MONTH_RUB - 1, "RUB"), pay=False), 12),
        (pay_fields(label, 5, amount=Money(PRICE_MONTH_RUB + 100, "RUB"), pay=False), 12),
        (pay_fields(label, 5, amount=Money(PRICE_MONTH_RUB, "USD"), pay=False), 12),
    ]
    for fields, code in cases:
        assert await post(client, Kind.CHECK, fields) == (200, {"code": code}), fields["InvoiceId"]
    clock.now += timedelta(days=2)
    assert await post(client, Kind.CHECK, pay_fields(label, 5, pay=False)) == (200, {"code": 20})
    assert await operations() == []


async def test_check_refuses_an_invoice_already_paid(client, worker):
    invoice, _ = await paid_through_pay(client, worker, 7)
    assert await post(client, Kind.CHECK, pay_fields(invoice["label"], 7, pay=False)) == (200, {"code": 13})


async def test_check_with_a_bad_signature_declines_and_changes_nothing(client, queues):
    invoice = await new_invoice(client, user_id=5)
    fields = pay_fields(invoice["label"], 5, pay=False)
    assert await post(client, Kind.CHECK, fields, secret="another-secret") == (200, {"code": 13})
    assert await operations() == [] and queues.depth() == 0


async def test_test_payments_are_declined_unless_test_mode_is_on(client, worker):
    reconfigure(client, test_mode=False)
    invoice = await new_invoice(client, user_id=5)
    assert await post(client, Kind.CHECK, pay_fields(invoice["label"], 5, pay=False)) == (200, {"code": 13})
    assert await post(client, Kind.PAY, pay_fields(invoice["label"], 5)) == (200, OK)
    await worker.drain()
    assert await operations() == []
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING
    confirm = pay_fields(invoice["label"], 5, transaction_id=1234)
    assert await post(client, Kind.CONFIRM, confirm) == (200, OK)
    await worker.drain()
    assert await operations() == []
    assert {kept.kind for kept in await CloudPaymentsNotice.find_all().to_list()} == {"test_refused"}
    live = pay_fields(invoice["label"], 5, test=False)
    assert await post(client, Kind.PAY, live) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID


# ---- Pay ----------------------------------------------------------------------------------------


async def test_pay_activates_the_subscription_and_saves_the_card(client, worker, clock, notifier, caplog):
    caplog.set_level(logging.DEBUG)
    invoice, fields = await paid_through_pay(client, worker, 11, consented=clock())
    status, body = await get_json(client, f"/api/invoices/{invoice['label']}")
    assert (body["status"], body["provider"], body["paid_amount"]) == ("paid", "cloudpayments", PRICE_MONTH_RUB)
    subscription = await Subscription.find_one(Subscription.user_id == 11)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert (subscription.payment_method, subscription.payment_provider, subscription.payment_token) == (
        "Visa •••• 4242", "cloudpayments", "tk_secret_token_value")
    [operation] = await operations()
    assert operation.operation_id == fields["TransactionId"] and operation.status is OperationStatus.APPLIED
    assert [n.user_id for n in notifier.notices] == [11]
    assert "tk_secret_token_value" not in caplog.text


async def test_pay_as_json_is_accepted(client, worker):
    invoice = await new_invoice(client, user_id=12)
    fields = pay_fields(invoice["label"], 12)
    assert await post(client, Kind.PAY, fields, content_type=JSON) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID


async def test_wrong_missing_or_hex_signature_is_refused_and_changes_nothing(client, worker, queues):
    invoice = await new_invoice(client, user_id=13)
    body = form_body(pay_fields(invoice["label"], 13))
    good = notification_headers(body, CP_SECRET, FORM)
    hex_digest = hmac.new(CP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    for headers in ({**good, "Content-HMAC": content_hmac(body, "wrong-secret")},
                    {key: value for key, value in good.items() if key != "Content-HMAC"},
                    {**good, "Content-HMAC": hex_digest},
                    {**good, "Content-HMAC": good["X-Content-HMAC"]}):
        status, answer = await post(client, Kind.PAY, body=body, headers=headers)
        assert (status, answer) == (401, {"code": 13})
    await worker.drain()
    assert await operations() == [] and queues.depth() == 0
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING


async def test_hmac_over_a_re_encoded_body_is_refused(client, queues):
    """The signature covers the bytes sent: the same fields with '%20' for '+' are another message."""
    invoice = await new_invoice(client, user_id=14)
    body = form_body(pay_fields(invoice["label"], 14, description="Pro plan"))
    assert b"+" in body
    re_encoded = body.replace(b"+", b"%20")
    headers = notification_headers(body, CP_SECRET, FORM)
    assert await post(client, Kind.PAY, body=re_encoded, headers=headers) == (401, {"code": 13})
    assert await operations() == []
    assert await post(client, Kind.PAY, body=re_encoded) == (200, OK), "signed over its own bytes it is fine"


async def test_tampered_amount_breaks_the_signature(client, queues):
    invoice = await new_invoice(client, user_id=15)
    body = form_body(pay_fields(invoice["label"], 15))
    headers = notification_headers(body, CP_SECRET, FORM)
    tampered = body.replace(b"Amount=299.00", b"Amount=999.00", 1)
    assert await post(client, Kind.PAY, body=tampered, headers=headers) == (401, {"code": 13})
    assert await operations() == []


async def test_unknown_invoice_is_acknowledged_and_kept_for_review(client, queues):
    assert await post(client, Kind.PAY, pay_fields("inv_nowhere", 16)) == (200, OK)
    [operation] = await operations()
    assert operation.status is OperationStatus.REJECTED and operation.reason == "unknown_label"
    assert queues.depth() == 0


@pytest.mark.parametrize("amount", [Money(PRICE_MONTH_RUB - 1, "RUB"), Money(PRICE_MONTH_RUB, "USD")])
async def test_wrong_amount_or_currency_never_activates(amount, client, worker):
    invoice = await new_invoice(client, user_id=17)
    assert await post(client, Kind.PAY, pay_fields(invoice["label"], 17, amount=amount)) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING
    [operation] = await operations()
    assert operation.status is OperationStatus.REJECTED
    assert await Subscription.find_one(Subscription.user_id == 17) is None


async def test_duplicate_pay_activates_once(client, worker, clock, notifier):
    invoice, fields = await paid_through_pay(client, worker, 18)
    assert await post(client, Kind.PAY, fields) == (200, OK)
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 18)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(await operations()) == 1 and len(notifier.notices) == 1


async def test_24_concurrent_pay_deliveries_activate_once(client, worker, clock, queues, notifier):
    invoice = await new_invoice(client, user_id=19)
    fields = pay_fields(invoice["label"], 19)
    answers = await asyncio.gather(*(post(client, Kind.PAY, fields) for _ in range(24)))
    assert answers == [(200, OK)] * 24
    assert queues.depth() == 1
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 19)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(await operations()) == 1 and len(notifier.notices) == 1


async def test_malformed_authentic_bodies_are_refused_and_change_nothing(client):
    invoice = await new_invoice(client, user_id=20)
    good = pay_fields(invoice["label"], 20)
    bodies = [
        b"\xff\xfe", b"a=1&&&b", b"Amount=1&Amount=2",
        form_body({k: v for k, v in good.items() if k != "TransactionId"}),
        form_body({**good, "TransactionId": "12ab"}),
        form_body({**good, "Amount": "1e9"}),
        form_body({**good, "Amount": "299,00"}),
        form_body({**good, "Status": "Declined"}),
        form_body({**good, "TestMode": "maybe"}),
    ]
    for body in bodies:
        assert await post(client, Kind.PAY, body=body) == (400, {"code": 13}), body
    for body in (b"[1, 2]", b"{not json", b'{"TransactionId": 1}'):
        assert await post(client, Kind.PAY, body=body, content_type=JSON) == (400, {"code": 13}), body
    assert await post(client, Kind.CHECK, body=b"\xff") == (200, {"code": 13})
    assert await operations() == []


def signed_headers(body: bytes, content_type: str = FORM, **extra: bytes) -> dict[str, bytes | str]:
    """CloudPayments' headers for `body`, with raw header values (any bytes) added or replacing them."""
    sent: dict[str, bytes | str] = dict(notification_headers(body, CP_SECRET, content_type))
    sent.update({name.replace("_", "-"): value for name, value in extra.items()})
    return sent


@pytest.mark.parametrize("value", [b"\xff\xfe\xfd", b"\xc3(" + b"A" * 42 + b"=",
                                   b"\xd0\x97FnWEzVKb2e/zAkAfMQSPdoYFgeDwS3Zk01ctNwlmyE="],
                         ids=["garbage", "truncated-utf8", "cyrillic"])
async def test_a_content_hmac_that_is_not_ascii_is_a_bad_signature_never_a_500(client, queues, value):
    invoice = await new_invoice(client, user_id=26)
    body = form_body(pay_fields(invoice["label"], 26))
    check = await raw_request(client, "POST", "/notify/cloudpayments/check", signed_headers(body, Content_HMAC=value),
                              body)
    assert (check.status, json.loads(check.body)) == (200, {"code": 13}), "declines the payment"
    pay = await raw_request(client, "POST", "/notify/cloudpayments/pay", signed_headers(body, Content_HMAC=value),
                            body)
    assert (pay.status, json.loads(pay.body)) == (401, {"code": 13})
    assert await operations() == [] and queues.depth() == 0


async def test_invalid_utf8_in_x_content_hmac_or_content_type_changes_nothing_of_a_signed_pay(client, worker):
    """X-Content-HMAC is never read; a stray byte in Content-Type's parameters leaves the form a form."""
    invoice = await new_invoice(client, user_id=27)
    body = form_body(pay_fields(invoice["label"], 27))
    headers = signed_headers(body, X_Content_HMAC=b"\xff\xfe=",
                             Content_Type=b"application/x-www-form-urlencoded; x=\xff")
    answer = await raw_request(client, "POST", "/notify/cloudpayments/pay", headers, body)
    assert (answer.status, json.loads(answer.body)) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID


async def test_signed_bodies_that_are_not_utf8_get_the_documented_refusal(client):
    invoice = await new_invoice(client, user_id=28)
    good = form_body(pay_fields(invoice["label"], 28))
    forms = [good.replace(b"CARD+HOLDER", b"CARD\xffHOLDER"), good.replace(b"CARD+HOLDER", b"CARD%FF%FEHOLDER"),
             good + b"&Description=%C3%28"]
    jsons = [b'{"TransactionId":1,"Amount":299.00,"Currency":"RUB","InvoiceId":"\xff"}',
             b'{"TransactionId":1,"Amount":299.00,"Currency":"RUB","InvoiceId":"\\udc00"}']
    for body, content_type in [*((b, FORM) for b in forms), *((b, JSON) for b in jsons)]:
        assert await post(client, Kind.PAY, body=body, content_type=content_type) == (400, {"code": 13}), body
        assert await post(client, Kind.CHECK, body=body, content_type=content_type) == (200, {"code": 13}), body
    assert await operations() == []


def nested(depth: int) -> bytes:
    """A Pay as JSON whose Data nests `depth` levels below the body (the body itself is level 1)."""
    return b'{"TransactionId":77,"Amount":299.00,"Currency":"RUB","Status":"Completed","Data":' + \
        b'{"a":' * (depth - 1) + b"1" + b"}" * (depth - 1) + b"}"


@pytest.mark.parametrize("depth", [MAX_JSON_NESTING + 1, 1000, 150_000])
async def test_json_nested_deeper_than_the_limit_is_refused_never_a_500(client, depth):
    body = nested(depth)
    assert await post(client, Kind.PAY, body=body, content_type=JSON) == (400, {"code": 13})
    assert await post(client, Kind.CHECK, body=body, content_type=JSON) == (200, {"code": 13})
    arrays = b"[" * depth + b"]" * depth
    assert await post(client, Kind.PAY, body=arrays, content_type=JSON) == (400, {"code": 13})
    assert await operations() == []


async def test_json_nested_within_the_limit_is_read(client, worker):
    invoice = await new_invoice(client, user_id=29)
    body = nested(MAX_JSON_NESTING).replace(b'"TransactionId":77,', b'"TransactionId":77,"InvoiceId":"' +
                                           invoice["label"].encode() + b'","AccountId":"29","TestMode":1,')
    assert await post(client, Kind.PAY, body=body, content_type=JSON) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID


@pytest.mark.parametrize("number", [b"1e999999999", b"1" * 5000, b"2.5e-99999", b"-" + b"9" * 100])
async def test_json_numbers_past_their_bounds_are_malformed_at_once(client, number):
    body = b'{"TransactionId":' + number + b',"Amount":299.00,"Currency":"RUB","InvoiceId":"x","Status":"Completed"}'
    assert await post(client, Kind.PAY, body=body, content_type=JSON) == (400, {"code": 13})
    amount = b'{"TransactionId":1,"Amount":' + number + b',"Currency":"RUB","InvoiceId":"x","Status":"Completed"}'
    assert await post(client, Kind.CHECK, body=amount, content_type=JSON) == (200, {"code": 13})
    assert await operations() == []


async def test_oversized_body_gets_413(client):
    body = b"a=" + b"x" * (1024 * 1024 + 1)
    response = await client.post("/notify/cloudpayments/pay", data=body,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 413
    assert await operations() == []


async def test_unknown_kind_gets_404(client):
    invoice = await new_invoice(client, user_id=21)
    status, _ = await post(client, "payout", pay_fields(invoice["label"], 21))
    assert status == 404
    assert await operations() == []


async def test_disabled_provider_answers_404(plans, redis_conn):
    from aiohttp.test_utils import TestClient, TestServer

    from tests.conftest import make_settings
    from webhook_server.app import create_app

    async with TestClient(TestServer(create_app(make_settings(), plans=plans))) as bare:
        status, _ = await post(bare, Kind.PAY, pay_fields("inv_x", 1))
        assert status == 404


async def test_ledger_outage_is_answered_so_cloudpayments_retries_and_nothing_is_lost(
    client, worker, queues, monkeypatch, clock, notifier
):
    from billing.errors import LedgerUnavailable

    invoice = await new_invoice(client, user_id=22)
    fields = pay_fields(invoice["label"], 22)

    async def down(*args, **kwargs):
        raise LedgerUnavailable("redis: ConnectionError")

    with monkeypatch.context() as patch:
        patch.setattr(type(queues), "enqueue_fulfilment", down)
        assert await post(client, Kind.PAY, fields) == (500, {"code": 13})
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING

    assert await post(client, Kind.PAY, fields) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID
    assert len(notifier.notices) == 1


async def test_database_outage_is_answered_so_cloudpayments_retries(client, monkeypatch):
    from pymongo.errors import ServerSelectionTimeoutError

    from db.cloudpayments import CloudPaymentsNotice as Notice

    invoice = await new_invoice(client, user_id=23)

    async def down(self):
        raise ServerSelectionTimeoutError("no servers")

    monkeypatch.setattr(Notice, "record", down)
    status, answer = await post(client, Kind.FAIL, fail_fields(transaction_id=1, amount=MONTH,
                                                               label=invoice["label"], account_id="23"))
    assert (status, answer) == (500, {"code": 13})


# ---- Fail ---------------------------------------------------------------------------------------


async def test_fail_is_kept_and_the_invoice_stays_payable(client, worker):
    invoice = await new_invoice(client, user_id=24)
    fail = fail_fields(transaction_id=555, amount=MONTH, label=invoice["label"], account_id="24")
    assert await post(client, Kind.FAIL, fail) == (200, OK)
    assert await post(client, Kind.FAIL, fail) == (200, OK)
    [kept] = await CloudPaymentsNotice.find_all().to_list()
    assert (kept.kind, kept.reason, kept.reason_code, kept.label) == ("fail", "InsufficientFunds", 5051,
                                                                      invoice["label"])
    assert await operations() == []
    assert await post(client, Kind.CHECK, pay_fields(invoice["label"], 24, pay=False)) == (200, OK)
    assert await post(client, Kind.PAY, pay_fields(invoice["label"], 24)) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID


# ---- Refund and Cancel ---------------------------------------------------------------------------


async def test_refund_notification_takes_the_period_back_once_and_tells_people(client, worker, clock, notifier):
    invoice, fields = await paid_through_pay(client, worker, 31)
    refund = refund_fields(refund_id=9001, payment_id=fields["TransactionId"], amount=MONTH,
                           label=invoice["label"], account_id="31")
    assert await post(client, Kind.REFUND, refund) == (200, OK)
    assert await post(client, Kind.REFUND, refund) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.REFUNDED
    subscription = await Subscription.find_one(Subscription.user_id == 31)
    assert subscription.current_period_end == clock.now
    assert [(n.user_id, n.reason) for n in notifier.reversals] == [(31, "CloudPayments: payment refunded")]


async def test_partial_refunds_reverse_only_when_they_add_up(client, worker, clock, notifier):
    invoice, fields = await paid_through_pay(client, worker, 32)
    half = Money(PRICE_MONTH_RUB // 2, "RUB")
    first = refund_fields(refund_id=9101, payment_id=fields["TransactionId"], amount=half, label=invoice["label"],
                          account_id="32")
    assert await post(client, Kind.REFUND, first) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID
    second = {**first, "TransactionId": "9102", "Amount": "149.50"}
    assert await post(client, Kind.REFUND, second) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.REFUNDED
    assert len(notifier.reversals) == 1


async def test_refund_that_overtakes_its_payment_still_leaves_nothing_applied(client, worker, clock):
    invoice = await new_invoice(client, user_id=33)
    fields = pay_fields(invoice["label"], 33)
    refund = refund_fields(refund_id=9201, payment_id=fields["TransactionId"], amount=MONTH,
                           label=invoice["label"], account_id="33")
    assert await post(client, Kind.REFUND, refund) == (200, OK)
    assert await post(client, Kind.PAY, fields) == (200, OK)
    await worker.drain()
    [operation] = await operations()
    assert operation.status is OperationStatus.REVERSED
    subscription = await Subscription.find_one(Subscription.user_id == 33)
    assert subscription is None or subscription.current_period_end <= clock.now


async def test_refund_of_an_unknown_payment_is_kept_and_changes_nothing(client, worker, queues):
    refund = refund_fields(refund_id=9301, payment_id=424242, amount=MONTH, label="inv_x", account_id="1")
    assert await post(client, Kind.REFUND, refund) == (200, OK)
    assert queues.depth() == 0 and await operations() == []
    assert await CloudPaymentsNotice.find_one(CloudPaymentsNotice.key == "9301") is not None


async def test_cancel_takes_a_completed_payment_back(client, worker, clock, notifier):
    invoice, fields = await paid_through_pay(client, worker, 34)
    cancel = cancel_fields(transaction_id=fields["TransactionId"], amount=MONTH, label=invoice["label"],
                           account_id="34")
    assert await post(client, Kind.CANCEL, cancel) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.REFUNDED
    assert [n.reason for n in notifier.reversals] == ["CloudPayments: payment cancelled"]


async def test_crash_after_the_refund_is_kept_then_redelivery_reverses(client, worker, queues):
    invoice, fields = await paid_through_pay(client, worker, 35)
    provider = client.app[PROVIDERS].get("cloudpayments")

    def crash(step: str) -> None:
        if step == "after_notice_insert":
            raise ConnectionResetError(step)

    provider.checkpoint = crash
    refund = refund_fields(refund_id=9401, payment_id=fields["TransactionId"], amount=MONTH,
                           label=invoice["label"], account_id="35")
    status, _ = await post(client, Kind.REFUND, refund)
    assert status == 500 and queues.depth() == 0
    provider.checkpoint = lambda step: None
    assert await post(client, Kind.REFUND, refund) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.REFUNDED


# ---- Recurrent and renewals ---------------------------------------------------------------------


async def test_a_subscriptions_scheduled_charges_extend_it_once_each(client, worker, clock, notifier):
    invoice = await new_invoice(client, user_id=41)
    first = pay_fields(invoice["label"], 41, subscription_id="sc_abc", token="tk_1")
    assert await post(client, Kind.PAY, first) == (200, OK)
    recurrent = recurrent_fields(subscription_id="sc_abc", account_id="41", amount=MONTH, status="Active",
                                 interval="Day", period=30)
    assert await post(client, Kind.RECURRENT, recurrent) == (200, OK)
    await worker.drain()
    clock.now += timedelta(days=30)
    renewal = pay_fields("", 41, subscription_id="sc_abc", token="tk_1")
    for _ in range(2):
        assert await post(client, Kind.PAY, renewal) == (200, OK)
    with_old_label = pay_fields(invoice["label"], 41, subscription_id="sc_abc")
    assert await post(client, Kind.PAY, with_old_label) == (200, OK)
    await worker.drain()

    subscription = await Subscription.find_one(Subscription.user_id == 41)
    assert subscription.current_period_end == clock.now - timedelta(days=30) + timedelta(days=90)
    renewal_invoice = await invoice_of(f"cpr_{renewal['TransactionId']}")
    assert (renewal_invoice.status, renewal_invoice.user_id, renewal_invoice.plan) == (InvoiceStatus.PAID, 41, "month")
    assert len(notifier.notices) == 3


async def test_recurrent_status_is_kept(client, worker):
    from db.cloudpayments import CloudPaymentsSubscription

    invoice = await new_invoice(client, user_id=42)
    assert await post(client, Kind.PAY, pay_fields(invoice["label"], 42, subscription_id="sc_def")) == (200, OK)
    cancelled = recurrent_fields(subscription_id="sc_def", account_id="42", amount=MONTH, status="Cancelled",
                                 interval="Day", period=30)
    assert await post(client, Kind.RECURRENT, cancelled) == (200, OK)
    assert await post(client, Kind.RECURRENT, cancelled) == (200, OK)
    assert (await CloudPaymentsSubscription.by_id("sc_def")).status == "Cancelled"
    unknown = {**cancelled, "Id": "sc_unknown"}
    assert await post(client, Kind.RECURRENT, unknown) == (200, OK)
    assert await post(client, Kind.RECURRENT, {k: v for k, v in cancelled.items() if k != "Id"}) == (400,
                                                                                                   {"code": 13})


async def test_renewal_from_an_unknown_subscription_is_kept_for_review(client, worker):
    assert await post(client, Kind.PAY, pay_fields("", 43, subscription_id="sc_never_seen")) == (200, OK)
    [operation] = await operations()
    assert operation.status is OperationStatus.REJECTED


# ---- two-stage ----------------------------------------------------------------------------------


async def test_authorized_pay_is_held_until_confirm(client, worker, clock):
    invoice = await new_invoice(client, user_id=51)
    fields = pay_fields(invoice["label"], 51, status=Status.AUTHORIZED)
    assert await post(client, Kind.PAY, fields) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING
    [operation] = await operations()
    assert operation.status is OperationStatus.HELD
    assert await post(client, Kind.CHECK, pay_fields(invoice["label"], 51, pay=False)) == (200, {"code": 13})

    assert await post(client, Kind.CONFIRM, pay_fields(invoice["label"], 51,
                                                       transaction_id=int(fields["TransactionId"]))) == (200, OK)
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID


async def test_cancel_of_a_hold_leaves_the_invoice_payable(client, worker):
    invoice = await new_invoice(client, user_id=52)
    fields = pay_fields(invoice["label"], 52, status=Status.AUTHORIZED)
    assert await post(client, Kind.PAY, fields) == (200, OK)
    cancel = cancel_fields(transaction_id=fields["TransactionId"], amount=MONTH, label=invoice["label"],
                           account_id="52")
    assert await post(client, Kind.CANCEL, cancel) == (200, OK)
    await worker.drain()
    [operation] = await operations()
    assert operation.status is OperationStatus.REVERSED
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING
    assert await post(client, Kind.CHECK, pay_fields(invoice["label"], 52, pay=False)) == (200, OK)


# ---- a failure between steps, then the delivery repeated ----------------------------------------------


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("step", STEPS)
async def test_crash_at_any_step_then_redelivery_ends_as_if_no_crash(step, client, worker, clock, notifier):
    """A subscription's first Pay (through every Pay step), then a Refund (through the notice step)."""
    provider = client.app[PROVIDERS].get("cloudpayments")

    def crash(reached: str) -> None:
        if reached == step:
            raise Crash(step)

    invoice = await new_invoice(client, user_id=81)
    pay = pay_fields(invoice["label"], 81, subscription_id="sc_crash")
    refund = refund_fields(refund_id=9501, payment_id=pay["TransactionId"], amount=MONTH, label=invoice["label"],
                           account_id="81")
    for kind, fields in ((Kind.PAY, pay), (Kind.REFUND, refund)):
        provider.checkpoint = crash
        status, _ = await post(client, kind, fields)
        await worker.drain()
        provider.checkpoint = lambda reached: None
        assert await post(client, kind, fields) == (200, OK)
        await worker.drain()
        if kind is Kind.PAY:
            assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID
            assert (await Subscription.find_one(Subscription.user_id == 81)).current_period_end == \
                clock.now + timedelta(days=30)

    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.REFUNDED
    assert (await Subscription.find_one(Subscription.user_id == 81)).current_period_end == clock.now
    [operation] = await operations()
    assert operation.status is OperationStatus.REVERSED
    assert (len(notifier.notices), len(notifier.reversals)) == (1, 1)


async def test_24_concurrent_refund_and_confirm_deliveries_act_once(client, worker, clock, notifier):
    held_invoice = await new_invoice(client, user_id=91)
    held = pay_fields(held_invoice["label"], 91, status=Status.AUTHORIZED)
    assert await post(client, Kind.PAY, held) == (200, OK)
    confirm = pay_fields(held_invoice["label"], 91, transaction_id=int(held["TransactionId"]))
    assert await asyncio.gather(*(post(client, Kind.CONFIRM, confirm) for _ in range(24))) == [(200, OK)] * 24
    await worker.drain()
    assert (await invoice_of(held_invoice["label"])).status is InvoiceStatus.PAID
    assert len(notifier.notices) == 1

    refund = refund_fields(refund_id=9601, payment_id=held["TransactionId"], amount=MONTH,
                           label=held_invoice["label"], account_id="91")
    assert await asyncio.gather(*(post(client, Kind.REFUND, refund) for _ in range(24))) == [(200, OK)] * 24
    await worker.drain()
    assert (await invoice_of(held_invoice["label"])).status is InvoiceStatus.REFUNDED
    assert (await Subscription.find_one(Subscription.user_id == 91)).current_period_end == clock.now
    assert len(notifier.reversals) == 1
    assert await CloudPaymentsNotice.find(CloudPaymentsNotice.kind == "refund").count() == 1


async def test_24_concurrent_deliveries_of_a_renewal_extend_once(client, worker, clock, notifier):
    invoice = await new_invoice(client, user_id=92)
    assert await post(client, Kind.PAY, pay_fields(invoice["label"], 92, subscription_id="sc_many")) == (200, OK)
    renewal = pay_fields("", 92, subscription_id="sc_many")
    assert await asyncio.gather(*(post(client, Kind.PAY, renewal) for _ in range(24))) == [(200, OK)] * 24
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 92)
    assert subscription.current_period_end == clock.now + timedelta(days=60)
    assert len(await operations()) == 2 and len(notifier.notices) == 2


async def test_outcomes_are_counted_in_the_metrics(client, worker):
    invoice = await new_invoice(client, user_id=93)
    assert await post(client, Kind.CHECK, pay_fields(invoice["label"], 93, pay=False)) == (200, OK)
    assert await post(client, Kind.PAY, pay_fields(invoice["label"], 93)) == (200, OK)
    assert await post(client, Kind.PAY, pay_fields(invoice["label"], 93), secret="forged") == (401, {"code": 13})
    metrics = await (await client.get("/metrics")).text()
    for outcome in ("check_ok", "pay_accepted", "bad_signature"):
        assert f'ymds_notifications_total{{outcome="{outcome}",provider="cloudpayments"}} 1.0' in metrics, outcome
