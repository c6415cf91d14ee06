"""POST /notify/click/prepare and /complete through real HTTP, the real Redis, a real RQ worker, the Click emulator."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pymongo.errors import AutoReconnect

from billing.providers.click import HOLD, STEPS, Action, build_request
from db import Invoice, InvoiceStatus, Operation, OperationStatus, Subscription
from db.click import PREPARE_ID_COUNTER, ClickAttempt, ClickAttemptState, ClickCounter
from tests.conftest import YOOMONEY_API_TOKEN, make_settings
from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, YMDS, running_demo
from tests.helpers import Forms, get_json, new_invoice, operations, path_of
from tests.webhook_server.test_redis_faults import OwnRedis
from webhook_server.app import create_app
from webhook_server.demo import DEMO_USER_ID
from webhook_server.emulators.click import (
    CLICK_FAILURE,
    COMPLETE,
    PREPARE,
    Attempt,
    ClickCaller,
    ClickEmulator,
    run_test_suite,
    simulate,
)
from webhook_server.keys import PROVIDERS

SECRET = "test_secret"  # click.md section 9
CLICK = {"click_service_id": "11111", "click_merchant_id": "22222", "click_secret_key": SECRET,
         "click_merchant_user_id": "33333", "click_pay_url": "http://click.test/services/pay"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MONTH_UZS = "35000.00"
VECTOR_PREPARE = (b"click_trans_id=1234567&service_id=11111&click_paydoc_id=7654321&merchant_trans_id=inv-42"
                  b"&amount=35000.00&action=0&error=0&error_note=Success&sign_time=2026-11-22+12%3A00%3A00"
                  b"&sign_string=10dbe518dfcde82f35bcbca8e5f24858")
VECTOR_COMPLETE = (b"click_trans_id=1234567&service_id=11111&click_paydoc_id=7654321&merchant_trans_id=inv-42"
                   b"&merchant_prepare_id=5&amount=35000.00&action=1&error=0&error_note=Success"
                   b"&sign_time=2026-11-22+12%3A00%3A00&sign_string=b8eb4515eac634516bbcc452fcabe429")


@pytest.fixture
def settings(yoomoney_emulator):
    _, emulator_url = yoomoney_emulator
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=emulator_url, **CLICK)


@pytest.fixture
def caller(client: TestClient) -> ClickCaller:
    return ClickCaller(client.session, str(client.make_url("/notify/click")), CLICK["click_service_id"], SECRET)


class Crash(RuntimeError):
    pass


def fail_at(step: str, error: Exception):
    def checkpoint(reached: str) -> None:
        if reached == step:
            raise error

    return checkpoint


async def uzs_invoice(client: TestClient, user_id: int = 42) -> str:
    return (await new_invoice(client, user_id=user_id))["label"]


async def post(client: TestClient, route: str, body: bytes, headers: dict[str, str] = FORM) -> tuple[int, Any]:
    response = await client.post(f"/notify/click/{route}", data=body, headers=headers)
    text = await response.text()
    return response.status, json.loads(text) if response.content_type == "application/json" else text


async def attempt_state(prepare_id: int) -> ClickAttemptState:
    attempt = await ClickAttempt.by_prepare_id(prepare_id)
    assert attempt is not None
    return attempt.state


async def invoice_status(label: str) -> InvoiceStatus:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice.status


async def nothing_recorded(queues) -> bool:
    return await operations() == [] and queues.depth() == 0


async def test_worked_vectors_get_exactly_the_reference_replies(client, worker, clock):
    await Invoice(label="inv-42", user_id=42, plan="month", amounts={"UZS": 3500000}, period_days=30,
                  created_at=clock.now, expires_at=clock.now + timedelta(days=1)).insert()
    await ClickCounter(name=PREPARE_ID_COUNTER, value=4).insert()

    response = await client.post("/notify/click/prepare", data=VECTOR_PREPARE, headers=FORM)
    assert (response.status, response.content_type) == (200, "application/json")
    assert await response.text() == ('{"click_trans_id": 1234567, "merchant_trans_id": "inv-42", '
                                     '"merchant_prepare_id": 5, "error": 0, "error_note": "Success"}')
    assert await post(client, "complete", VECTOR_COMPLETE) == (200, {
        "click_trans_id": 1234567, "merchant_trans_id": "inv-42", "merchant_confirm_id": 5, "error": 0,
        "error_note": "Success"})
    await worker.drain()
    assert await invoice_status("inv-42") is InvoiceStatus.PAID
    [operation] = await operations()
    assert (operation.provider, operation.operation_id, operation.amount, operation.currency) == (
        "click", "1234567:inv-42", 3500000, "UZS")
    assert operation.status is OperationStatus.APPLIED


async def test_payment_activates_the_subscription(client, worker, caller, clock, notifier):
    label = await uzs_invoice(client, user_id=7)
    prepared, completed = await caller.pay(label, MONTH_UZS)
    assert (prepared.error, completed.error) == (0, 0)
    assert completed.body["merchant_confirm_id"] == prepared.body["merchant_prepare_id"]
    await worker.drain()

    status, body = await get_json(client, f"/api/invoices/{label}")
    assert (body["status"], body["provider"], body["paid_amount"], body["paid_currency"]) == (
        "paid", "click", 3500000, "UZS")
    status, subscription = await get_json(client, "/api/users/7/subscription")
    assert subscription["status"] == "active"
    assert subscription["current_period_end"] == (clock.now + timedelta(days=30)).isoformat()
    [operation] = await operations()
    assert operation.operation_id == f'{caller.sent[0][0]["click_trans_id"]}:{label}' and len(notifier.notices) == 1


@pytest.mark.parametrize("one_click_trans_id", [True, False], ids=["as Click's tool: one id", "fresh ids"])
async def test_clicks_test_tool_scenarios_all_pass(client, worker, caller, clock, one_click_trans_id):
    labels = [await uzs_invoice(client, user_id=8) for _ in range(3)]
    results = await run_test_suite(caller, labels, MONTH_UZS, one_click_trans_id=one_click_trans_id)
    assert [(r.number, r.got) for r in results if not r.passed] == []
    assert len(results) == 15
    await worker.drain()
    assert [await invoice_status(label) for label in labels] == [
        InvoiceStatus.PAID, InvoiceStatus.PAID, InvoiceStatus.PENDING]
    subscription = await Subscription.find_one(Subscription.user_id == 8)
    assert subscription.current_period_end == clock.now + timedelta(days=60), "two payments, each applied once"


async def test_repeated_prepare_returns_the_same_merchant_prepare_id(client, caller, queues):
    label = await uzs_invoice(client)
    fields = caller.fields(PREPARE, Attempt(label, MONTH_UZS))
    first = await caller.send(PREPARE, fields)
    replies = await asyncio.gather(*(caller.send(PREPARE, fields) for _ in range(24)))
    assert {reply.body["merchant_prepare_id"] for reply in replies} == {first.body["merchant_prepare_id"]}
    assert {reply.error for reply in replies} == {0}
    assert len(await ClickAttempt.find_all().to_list()) == 1 and await nothing_recorded(queues)


async def test_concurrent_first_prepares_store_one_attempt(client, caller):
    label = await uzs_invoice(client)
    fields = caller.fields(PREPARE, Attempt(label, MONTH_UZS))
    replies = await asyncio.gather(*(caller.send(PREPARE, fields) for _ in range(24)))
    assert len({reply.body["merchant_prepare_id"] for reply in replies}) == 1
    assert len(await ClickAttempt.find_all().to_list()) == 1


async def test_attempts_get_distinct_prepare_ids(client, caller):
    replies = [await caller.prepare(Attempt(await uzs_invoice(client), MONTH_UZS)) for _ in range(3)]
    assert [reply.error for reply in replies] == [0, 0, 0]
    ids = [reply.body["merchant_prepare_id"] for reply in replies]
    assert len(set(ids)) == 3 and all(isinstance(value, int) and 0 < value < 2**31 for value in ids)


@pytest.mark.parametrize("changes", [{"sign_string": "0" * 32}, {"sign_string": ""}, {"amount": "35001.00"},
                                     {"merchant_trans_id": "inv_other"}, {"click_trans_id": "1"},
                                     {"sign_time": "2026-11-22 12:00:01"}])
async def test_prepare_with_a_bad_or_stale_sign_string_is_minus_1(client, caller, queues, changes):
    label = await uzs_invoice(client)
    reply = await caller.send(PREPARE, {**caller.fields(PREPARE, Attempt(label, MONTH_UZS)), **changes})
    assert (reply.status, reply.error, reply.body["error_note"]) == (200, -1, "SIGN CHECK FAILED!")
    assert await ClickAttempt.find_all().to_list() == [] and await nothing_recorded(queues)


async def test_correctly_signed_foreign_service_id_is_minus_1(client, caller):
    label = await uzs_invoice(client)
    foreign = build_request(SECRET, action=Action.PREPARE, click_trans_id=1, service_id="99999", label=label,
                            amount=MONTH_UZS, sign_time="2026-11-22 12:00:00", click_paydoc_id=2)
    assert (await caller.send(PREPARE, foreign)).error == -1


async def test_upper_case_sign_string_is_accepted(client, caller):
    label = await uzs_invoice(client)
    fields = caller.fields(PREPARE, Attempt(label, MONTH_UZS))
    assert (await caller.send(PREPARE, {**fields, "sign_string": fields["sign_string"].upper()})).error == 0


async def test_prepare_for_an_unknown_label_is_minus_5(client, caller):
    assert (await caller.prepare(Attempt("inv_doesnotexist", MONTH_UZS))).error == -5


@pytest.mark.parametrize("amount", ["34999.99", "35000.01", "350000.00", "35000.001", "abc", "3.5e4", ""])
async def test_prepare_with_a_wrong_amount_is_minus_2(client, caller, amount):
    label = await uzs_invoice(client)
    assert (await caller.prepare(Attempt(label, amount))).error == -2
    assert await ClickAttempt.find_all().to_list() == []


@pytest.mark.parametrize("amount", ["35000", "35000.0", "35000.00", "35000.000"])
async def test_prepare_accepts_every_spelling_of_the_exact_amount(client, caller, amount):
    label = await uzs_invoice(client)
    assert (await caller.prepare(Attempt(label, amount))).error == 0


async def test_invoice_without_a_uzs_price_is_minus_2(client, caller, clock):
    await Invoice(label="inv_rub", user_id=1, plan="month", amounts={"RUB": 29900}, period_days=30,
                  created_at=clock.now, expires_at=clock.now + timedelta(days=1)).insert()
    assert (await caller.prepare(Attempt("inv_rub", "299.00"))).error == -2


async def test_action_that_does_not_match_the_route_is_minus_3(client, caller):
    label = await uzs_invoice(client)
    attempt = Attempt(label, MONTH_UZS)
    complete_fields = caller.fields(COMPLETE, attempt, prepare_id=1)
    assert (await caller.send(PREPARE, complete_fields)).error == -3
    assert (await caller.send(COMPLETE, caller.fields(PREPARE, attempt))).error == -8, \
        "a Prepare sent to /complete lacks merchant_prepare_id"
    assert (await caller.send(COMPLETE, {**complete_fields, "action": "0"})).error == -3
    assert (await caller.send(PREPARE, {**caller.fields(PREPARE, attempt), "action": "2"})).error == -3


async def test_prepare_on_a_paid_invoice_is_minus_4(client, worker, caller):
    label = await uzs_invoice(client)
    await caller.pay(label, MONTH_UZS)
    assert (await caller.prepare(Attempt(label, MONTH_UZS))).error == -4, "completed, not yet fulfilled"
    await worker.drain()
    assert (await caller.prepare(Attempt(label, MONTH_UZS))).error == -4, "fulfilled"


async def test_prepare_on_an_expired_invoice_is_minus_9(client, caller, clock):
    label = await uzs_invoice(client)
    clock.now += timedelta(days=2)
    assert (await caller.prepare(Attempt(label, MONTH_UZS))).error == -9


async def test_prepare_reporting_clicks_failure_is_minus_9(client, caller):
    label = await uzs_invoice(client)
    fields = build_request(SECRET, action=Action.PREPARE, click_trans_id=5, service_id="11111", label=label,
                           amount=MONTH_UZS, sign_time="2026-11-22 12:00:00", click_paydoc_id=6, error=CLICK_FAILURE)
    assert (await caller.send(PREPARE, fields)).error == -9
    assert await ClickAttempt.find_all().to_list() == []


async def test_prepare_on_a_refunded_invoice_is_minus_9(client, worker, caller, queues):
    label = await uzs_invoice(client)
    await caller.pay(label, MONTH_UZS)
    await worker.drain()
    [operation] = await operations()
    await queues.enqueue_reversal("click", operation.operation_id, "refund")
    await worker.drain()
    assert await invoice_status(label) is InvoiceStatus.REFUNDED
    assert (await caller.prepare(Attempt(label, MONTH_UZS))).error == -9


async def test_complete_checks_label_prepare_id_and_amount(client, caller, queues):
    label, other = await uzs_invoice(client), await uzs_invoice(client, user_id=43)
    attempt, foreign = Attempt(label, MONTH_UZS), Attempt(other, MONTH_UZS)
    prepare_id = (await caller.prepare(attempt)).body["merchant_prepare_id"]
    foreign_id = (await caller.prepare(foreign)).body["merchant_prepare_id"]

    assert (await caller.complete(Attempt("inv_none", MONTH_UZS), prepare_id)).error == -5
    assert (await caller.complete(attempt, 999999999)).error == -6
    assert (await caller.complete(attempt, foreign_id)).error == -6, "another label's attempt"
    assert (await caller.complete(Attempt(label, MONTH_UZS), prepare_id)).error == -6, "another click_trans_id"
    wrong = caller.fields(COMPLETE, Attempt(label, "300", attempt.click_trans_id, attempt.click_paydoc_id),
                          prepare_id=prepare_id)
    reply = await caller.send(COMPLETE, wrong)
    assert (reply.error, reply.body["merchant_confirm_id"]) == (-2, prepare_id)
    assert (await caller.complete(attempt, prepare_id, sign_string="0" * 32)).error == -1
    assert await attempt_state(prepare_id) is ClickAttemptState.PREPARED and await nothing_recorded(queues)
    assert (await caller.complete(attempt, prepare_id)).error == 0


async def test_complete_reporting_clicks_failure_cancels_and_never_activates(client, worker, caller, queues):
    label = await uzs_invoice(client)
    attempt = Attempt(label, MONTH_UZS)
    prepare_id = (await caller.prepare(attempt)).body["merchant_prepare_id"]

    replies = [await caller.complete(attempt, prepare_id, error=CLICK_FAILURE) for _ in range(2)]
    assert [reply.error for reply in replies] == [-9, -9]
    assert replies[0].body["error_note"] == "Transaction cancelled"
    assert (await caller.complete(attempt, prepare_id)).error == -9, "a cancelled attempt is never paid"
    assert (await caller.prepare(attempt)).error == -9, "its Prepare repeated says so too"
    stored = await ClickAttempt.by_prepare_id(prepare_id)
    assert (stored.state, stored.click_error) == (ClickAttemptState.CANCELLED, CLICK_FAILURE)
    await worker.drain()
    assert await invoice_status(label) is InvoiceStatus.PENDING and await nothing_recorded(queues)

    assert [reply.error for reply in await caller.pay(label, MONTH_UZS)] == [0, 0], "the invoice stays payable"


async def test_repeated_complete_of_a_paid_order_is_minus_4_and_changes_nothing(client, worker, caller, clock,
                                                                                 notifier):
    label = await uzs_invoice(client, user_id=9)
    attempt = Attempt(label, MONTH_UZS)
    prepare_id = (await caller.prepare(attempt)).body["merchant_prepare_id"]
    assert (await caller.complete(attempt, prepare_id)).error == 0
    await worker.drain()

    again = await caller.complete(attempt, prepare_id)
    assert (again.error, again.body["merchant_confirm_id"]) == (-4, prepare_id)
    assert (await caller.prepare(attempt)).error == -4
    cancelled = await caller.complete(attempt, prepare_id, error=CLICK_FAILURE)
    assert cancelled.error == -9, "Click's current test suite (scenario 8) wants -9 here"
    stored = await ClickAttempt.by_prepare_id(prepare_id)
    assert (stored.state, stored.click_error) == (ClickAttemptState.COMPLETED, CLICK_FAILURE), "never un-paid"
    await worker.drain()
    assert await invoice_status(label) is InvoiceStatus.PAID
    subscription = await Subscription.find_one(Subscription.user_id == 9)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(await operations()) == 1 and len(notifier.notices) == 1


async def test_24_concurrent_completes_activate_once(client, worker, caller, queues, clock, notifier):
    label = await uzs_invoice(client, user_id=10)
    attempt = Attempt(label, MONTH_UZS)
    prepare_id = (await caller.prepare(attempt)).body["merchant_prepare_id"]
    fields = caller.fields(COMPLETE, attempt, prepare_id=prepare_id)

    replies = await asyncio.gather(*(caller.send(COMPLETE, fields) for _ in range(24)))
    assert sorted(reply.error for reply in replies) == [-4] * 23 + [0]
    assert queues.depth() == 1
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 10)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(await operations()) == 1 and len(notifier.notices) == 1


async def test_concurrent_complete_and_cancel_agree_on_one_fate(client, worker, caller):
    label = await uzs_invoice(client)
    attempt = Attempt(label, MONTH_UZS)
    prepare_id = (await caller.prepare(attempt)).body["merchant_prepare_id"]
    requests = [caller.complete(attempt, prepare_id, error=CLICK_FAILURE if i % 2 else 0) for i in range(24)]
    errors = [reply.error for reply in await asyncio.gather(*requests)]
    await worker.drain()
    state = await attempt_state(prepare_id)
    if state is ClickAttemptState.COMPLETED:  # every cancel came after the debit won: -9, and kept paid
        confirms, cancels = errors[0::2], errors[1::2]
        assert sorted(confirms) == [-4] * 11 + [0] and set(cancels) == {-9} and len(await operations()) == 1
        assert await invoice_status(label) is InvoiceStatus.PAID
    else:
        assert state is ClickAttemptState.CANCELLED and set(errors) == {-9}
        assert await operations() == [] and await invoice_status(label) is InvoiceStatus.PENDING


async def test_complete_after_the_hold_lapsed_and_another_attempt_paid_is_minus_4_and_kept_for_refund(
        client, worker, caller, clock):
    label = await uzs_invoice(client, user_id=11)
    first, second = Attempt(label, MONTH_UZS), Attempt(label, MONTH_UZS)
    first_id = (await caller.prepare(first)).body["merchant_prepare_id"]
    assert (await caller.prepare(second)).error == -4, "the first attempt holds the invoice"
    clock.now += HOLD + timedelta(seconds=1)
    second_id = (await caller.prepare(second)).body["merchant_prepare_id"]
    assert (await caller.complete(second, second_id)).error == 0
    late = await caller.complete(first, first_id)
    assert (late.error, late.body["merchant_confirm_id"]) == (-4, first_id), "Click keeps the debit: -4"
    assert (await caller.complete(first, first_id)).error == -4, "and again on a repeat"
    await worker.drain()
    statuses = {op.operation_id: op.status for op in await operations()}
    assert statuses == {f"{second.click_trans_id}:{label}": OperationStatus.APPLIED,
                        f"{first.click_trans_id}:{label}": OperationStatus.EXTRA}, "the debit listed for a refund"
    subscription = await Subscription.find_one(Subscription.user_id == 11)
    assert subscription.current_period_end == clock.now + timedelta(days=30)


@pytest.mark.parametrize("body", [b"\xff\xfe", b"a=%FF", b"action=0&action=0", b"garbage", b"", b"=&=&="])
async def test_malformed_form_is_minus_8_in_json(client, queues, body):
    for route in ("prepare", "complete"):
        status, reply = await post(client, route, body)
        assert status == 200 and reply["error"] == -8 and reply["error_note"] == "Error in request from click"
    assert await ClickAttempt.find_all().to_list() == [] and await nothing_recorded(queues)


@pytest.mark.parametrize("field", ["click_trans_id", "service_id", "click_paydoc_id", "merchant_trans_id", "amount",
                                   "action", "error", "error_note", "sign_time", "sign_string"])
async def test_missing_field_is_minus_8(client, caller, field):
    label = await uzs_invoice(client)
    fields = caller.fields(PREPARE, Attempt(label, MONTH_UZS))
    del fields[field]
    assert (await caller.send(PREPARE, fields)).error == -8


async def test_json_body_is_accepted(client, caller):
    label = await uzs_invoice(client)
    fields = caller.fields(PREPARE, Attempt(label, MONTH_UZS))
    body = json.dumps({**fields, "click_trans_id": int(fields["click_trans_id"]), "action": 0})
    status, reply = await post(client, "prepare", body.encode(), {"Content-Type": "application/json"})
    assert (status, reply["error"]) == (200, 0)
    status, reply = await post(client, "prepare", b'["not", "an", "object"]', {"Content-Type": "application/json"})
    assert (status, reply["error"]) == (200, -8)


async def test_oversized_body_gets_413_and_changes_nothing(client, caller, queues):
    label = await uzs_invoice(client)
    fields = caller.fields(PREPARE, Attempt(label, MONTH_UZS))
    body = urlencode({**fields, "padding": "x" * (1024 * 1024)}).encode()
    for route in ("prepare", "complete"):
        status, _ = await post(client, route, body)
        assert status == 413
    assert await ClickAttempt.find_all().to_list() == [] and await nothing_recorded(queues)


PREPARE_STEPS = ("after_hold", "after_prepare_insert")
FAILURES = {"crash": (Crash("process died"), 500, None), "database": (AutoReconnect("connection reset"), 200, -7)}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("step", STEPS)
async def test_failure_between_steps_then_redelivery_activates_once(step, failure, client, worker, caller, clock,
                                                                    notifier):
    """A crash (no answer reaches Click) or a database error (-7) at each step, then Click's repeat."""
    error, status, click_error = FAILURES[failure]
    label = await uzs_invoice(client, user_id=12)
    attempt = Attempt(label, MONTH_UZS)
    provider = client.app[PROVIDERS].get("click")
    provider.checkpoint = fail_at(step, error)
    prepare_fields = caller.fields(PREPARE, attempt)
    prepared = await caller.send(PREPARE, prepare_fields)
    if step in PREPARE_STEPS:
        assert (prepared.status, prepared.error) == (status, click_error)
        provider.checkpoint = lambda reached: None
        prepared = await caller.send(PREPARE, prepare_fields)
    prepare_id = prepared.body["merchant_prepare_id"]
    complete_fields = caller.fields(COMPLETE, attempt, prepare_id=prepare_id)
    completed = await caller.send(COMPLETE, complete_fields)
    if step not in PREPARE_STEPS:
        assert (completed.status, completed.error) == (status, click_error)
        provider.checkpoint = lambda reached: None
        completed = await caller.send(COMPLETE, complete_fields)
    assert completed.error == 0, "the failed answer was no success, so the repeat is"
    assert (await caller.send(COMPLETE, complete_fields)).error == -4
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 12)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert [op.status for op in await operations()] == [OperationStatus.APPLIED] and len(notifier.notices) == 1


async def test_redis_down_at_complete_is_minus_7_and_the_repeat_activates(plans, clock, redis_conn):
    own_redis = OwnRedis()
    own_redis.start()
    app = create_app(make_settings(redis_url=own_redis.url, **CLICK), plans=plans, clock=clock)
    try:
        async with TestClient(TestServer(app)) as client:
            caller = ClickCaller(client.session, str(client.make_url("/notify/click")), "11111", SECRET)
            label = await uzs_invoice(client, user_id=13)
            attempt = Attempt(label, MONTH_UZS)
            prepare_id = (await caller.prepare(attempt)).body["merchant_prepare_id"]
            own_redis.stop()
            assert (await caller.complete(attempt, prepare_id)).error == -7
            [recorded] = await operations()
            assert recorded.status is OperationStatus.RECORDED, "recorded, only the enqueue failed"
            own_redis.start()
            assert (await caller.complete(attempt, prepare_id)).error == 0
            assert await attempt_state(prepare_id) is ClickAttemptState.COMPLETED
    finally:
        if own_redis.process and own_redis.process.poll() is None:
            own_redis.stop()


async def test_disabled_click_routes_answer_404_and_the_page_has_no_click_button(plans, clock, redis_conn):
    app = create_app(make_settings(), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as bare:
        for route in ("prepare", "complete"):
            assert (await bare.post(f"/notify/click/{route}", data=VECTOR_PREPARE, headers=FORM)).status == 404
        invoice = await new_invoice(bare)
        page = await (await bare.get(path_of(invoice["pay_url"]))).text()
        assert "pay-click" not in page and "pay-yoomoney" in page
    assert await Operation.find_all().to_list() == []


async def click_form(client: TestClient, pay_url: str) -> dict[str, Any]:
    parser = Forms()
    parser.feed(await (await client.get(path_of(pay_url))).text())
    return parser.forms["pay-click"]


async def test_payment_page_offers_pay_with_click(client):
    invoice = await new_invoice(client)
    page = await (await client.get(path_of(invoice["pay_url"]), headers={"Accept-Language": "en"})).text()
    assert "Pay with Click" in page
    form = await click_form(client, invoice["pay_url"])
    assert (form["method"], form["action"]) == ("get", "http://click.test/services/pay")
    assert form["fields"] == {"service_id": "11111", "merchant_id": "22222", "amount": MONTH_UZS,
                              "transaction_param": invoice["label"],
                              "return_url": invoice["pay_url"] + "&returned=1"}


@pytest.fixture
async def click_emulator(client: TestClient):
    emulator = ClickEmulator(service_id="11111", merchant_id="22222", secret=SECRET,
                             notify_base=str(client.make_url("/notify/click")))
    server = TestServer(emulator.app())
    await server.start_server()
    yield emulator, str(server.make_url("/services/pay"))
    await server.close()


@pytest.mark.parametrize("outcome", ["pay", "decline"])
async def test_paying_through_the_emulator_page(client, worker, click_emulator, outcome):
    emulator, emulator_url = click_emulator
    invoice = await new_invoice(client, user_id=77)
    form = await click_form(client, invoice["pay_url"])
    async with client.session.get(emulator_url, params=form["fields"]) as page:
        assert page.status == 200 and "emulator-pay" in await page.text()
    async with client.session.post(emulator_url, data={**form["fields"], "outcome": outcome},
                                   allow_redirects=False) as paid:
        assert paid.status == 303 and paid.headers["Location"] == form["fields"]["return_url"]
    await worker.drain()
    expected = {"pay": (InvoiceStatus.PAID, [0, 0]), "decline": (InvoiceStatus.PENDING, [0, -9])}[outcome]
    assert (await invoice_status(invoice["label"]), [r.error for r in emulator.payments[0]]) == expected


@pytest.mark.parametrize(("dropped", "status"), [({"complete"}, 303), ({"prepare"}, 502)])
async def test_the_emulator_page_with_a_lost_delivery(client, worker, click_emulator, dropped, status):
    """A lost Complete: the payer is debited and sent back, nobody told us. A lost Prepare: Click refuses."""
    emulator, emulator_url = click_emulator
    emulator.state.drop = dropped
    invoice = await new_invoice(client, user_id=78)
    form = await click_form(client, invoice["pay_url"])
    async with client.session.post(emulator_url, data={**form["fields"], "outcome": "pay"},
                                   allow_redirects=False) as paid:
        assert paid.status == status
    await worker.drain()
    assert await invoice_status(invoice["label"]) is InvoiceStatus.PENDING and await operations() == []
    assert len(emulator.state.undelivered) == (1 if "complete" in dropped else 0)


async def test_emulator_refuses_a_foreign_merchant(client, click_emulator):
    _, emulator_url = click_emulator
    async with client.session.get(emulator_url, params={"service_id": "1", "merchant_id": "22222"}) as page:
        assert page.status == 400


@pytest.mark.parametrize(("event", "status", "paid"), [
    ("payment", InvoiceStatus.PAID, True), ("prepare", InvoiceStatus.PENDING, False),
    ("cancel", InvoiceStatus.PENDING, False), ("suite", InvoiceStatus.PAID, True),
])
async def test_simulate_sends_what_click_would(client, worker, settings, event, status, paid):
    label = await uzs_invoice(client, user_id=14)
    base = str(client.make_url("")).rstrip("/")
    assert await simulate(settings, client.session, base, event, label, None) == 200
    await worker.drain()
    assert await invoice_status(label) is status
    assert (await Subscription.find_one(Subscription.user_id == 14) is not None) is paid


async def test_simulate_reports_an_unexpected_click_error(client, settings):
    label = await uzs_invoice(client)
    base = str(client.make_url("")).rstrip("/")
    assert await simulate(settings, client.session, base, "payment", label, "1.00") == 422


async def test_outcomes_are_counted_and_no_secret_is_logged(client, worker, caller, caplog):
    caplog.set_level(logging.DEBUG)
    label = await uzs_invoice(client)
    await caller.pay(label, MONTH_UZS)
    await caller.prepare(Attempt(label, MONTH_UZS), sign_string="0" * 32)
    await worker.drain()
    metrics = await (await client.get("/metrics")).text()
    assert 'ymds_notifications_total{outcome="complete_success",provider="click"} 1.0' in metrics or \
        'ymds_notifications_total{provider="click",outcome="complete_success"} 1.0' in metrics
    assert 'outcome="prepare_sign_check_failed"' in metrics
    assert SECRET not in caplog.text


UZS_PLANS = '[plans.week]\ntitle = "1 week"\nperiod_days = 7\nprices = { UZS = 1000000 }\n'


async def test_demo_pays_a_uzs_invoice_through_the_click_emulator_and_passes_the_suite(tmp_path):
    """`ymds demo` as a person runs it: the page's Click button, the emulator's Pay, `ymds simulate click suite`."""
    plans = tmp_path / "uzs-plans.toml"
    plans.write_text(UZS_PLANS)
    async with running_demo(tmp_path, PLANS_FILE=str(plans)) as demo, aiohttp.ClientSession() as session:
        parser = Forms()
        async with session.get(demo.link) as page:
            parser.feed(await page.text())
        assert "pay-click" in parser.forms and "pay-yoomoney" not in parser.forms, "Click offered for UZS"
        form = parser.forms["pay-click"]
        assert form["fields"]["amount"] == "10000.00"
        async with session.get(form["action"], params=form["fields"]) as emulator_page:
            assert emulator_page.status == 200
        async with session.post(form["action"], data={**form["fields"], "outcome": "pay"}) as paid:
            assert paid.status == 200 and str(paid.url) == form["fields"]["return_url"], "back on our page"
        headers = {"Authorization": f"Bearer {CUSTOM['ADMIN_API_TOKEN']}"}
        async with asyncio.timeout(DEADLINE_SECONDS):
            while True:  # the demo's worker thread fulfils it; each poll is a real round trip
                async with session.get(f"{demo.base}/api/users/{DEMO_USER_ID}/subscription",
                                       headers=headers) as response:
                    if response.status == 200 and (await response.json())["status"] == "active":
                        break
        async with session.post(f"{demo.base}/api/invoices", json={"user_id": 5, "plan": "week"},
                                headers=headers) as created:
            label = (await created.json())["label"]
        suite = await asyncio.create_subprocess_exec(
            str(YMDS), "simulate", "click", "suite", "--invoice", label, "--url", demo.base, env=demo.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(suite.communicate(), DEADLINE_SECONDS)
        assert suite.returncode == 0, err.decode()
        assert "HTTP 200" in out.decode() and "FAILED" not in err.decode()
