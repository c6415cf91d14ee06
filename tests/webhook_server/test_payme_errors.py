"""Every error answer of POST /notify/payme, over real HTTP: auth, envelope, bodies, amounts, accounts, settings."""

from __future__ import annotations

import base64

import pytest
from aiohttp.test_utils import TestClient, TestServer

from db.payme import PaymeState
from tests.helpers import new_invoice, operations
from tests.payme_support import (  # noqa: F401 - fixtures
    PAYME_KEY,
    PRICE_MONTH_UZS,
    emulator_for,
    error_code,
    payme,
    payme_settings,
    rpc,
    settings,
    transactions,
)
from webhook_server.app import create_app
from webhook_server.emulators.payme import new_payme_id

CHECK_TX = {"method": "CheckTransaction", "params": {"id": "5305e3bab097f420a62ced0b"}, "id": 77}


def basic(text: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}


@pytest.mark.parametrize("headers", [
    {},
    basic(f"Paycom:{PAYME_KEY}x"),
    basic(f"paycom:{PAYME_KEY}"),
    basic(f"Other:{PAYME_KEY}"),
    basic(PAYME_KEY),
    basic("Paycom:" + PAYME_KEY.replace("%", "%25")),
    {"Authorization": "Basic"},
    {"Authorization": "Basic !!!not-base64"},
    {"Authorization": "Bearer " + base64.b64encode(f"Paycom:{PAYME_KEY}".encode()).decode()},
    {"Authorization": "Basic " + base64.b64encode(b"Paycom:\xff\xfe").decode()},
], ids=["none", "wrong-key", "lowercase-login", "wrong-login", "no-colon", "url-encoded-key", "empty-token",
        "garbage", "bearer", "not-utf8"])
async def test_bad_authorization_gets_32504_with_http_200_and_changes_nothing(client, headers):
    invoice = await new_invoice(client)
    for method, params in (("CheckTransaction", {"id": new_payme_id()}),
                           ("CreateTransaction", {"id": new_payme_id(), "time": 1, "amount": PRICE_MONTH_UZS,
                                                  "account": {"order_id": invoice["label"]}}),
                           ("ChangePassword", {"password": "stolen"})):
        status, body = await rpc(client, {"method": method, "params": params, "id": 5}, key=None, headers=headers)
        assert status == 200
        assert body["error"]["code"] == -32504 and body["id"] == 5
        assert set(body["error"]["message"]) == {"ru", "uz", "en"}
    assert await transactions() == []


async def test_authorization_header_name_and_scheme_are_case_insensitive(client):
    token = base64.b64encode(f"Paycom:{PAYME_KEY}".encode()).decode()
    status, body = await rpc(client, CHECK_TX, key=None, headers={"authorization": f"basic {token}"})
    assert body["error"]["code"] == -31003


async def test_unauthenticated_garbage_learns_only_32504(client):
    status, body = await rpc(client, None, key="wrong", raw=b"{not json")
    assert (status, body["error"]["code"], body["id"]) == (200, -32504, None)


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe{}", b"[1,", b"NaN", b"{\"id\": 1, \"method\": }",
                                 b"[" * 100_000 + b"]" * 100_000], ids=[
    "truncated", "empty", "not-utf8", "open-array", "nan", "bad-value", "deeply-nested"])
async def test_malformed_json_gets_32700(client, raw):
    status, body = await rpc(client, None, raw=raw)
    assert (status, body["error"]["code"]) == (200, -32700)
    assert await transactions() == []


@pytest.mark.parametrize(("body", "data"), [
    ([1, 2], None),
    ({"params": {}, "id": 1}, "method"),
    ({"method": 5, "params": {}, "id": 1}, "method"),
    ({"method": "CheckTransaction", "id": 1}, "params"),
    ({"method": "CheckTransaction", "params": [], "id": 1}, "params"),
    ({"method": "CheckTransaction", "params": {"id": "x"}}, "id"),
    ({"method": "CheckTransaction", "params": {"id": "x"}, "id": True}, "id"),
    ({"method": "CheckTransaction", "params": {"id": "x"}, "id": 1.5}, "id"),
    ({"method": "CheckTransaction", "params": {}, "id": 1}, "id"),
    ({"method": "CheckTransaction", "params": {"id": 7}, "id": 1}, "id"),
    ({"method": "CreateTransaction", "params": {"id": "a" * 24, "amount": 1, "account": {}}, "id": 1}, "time"),
    ({"method": "CheckPerformTransaction", "params": {"amount": "3500000", "account": {}}, "id": 1}, "amount"),
    ({"method": "CheckPerformTransaction", "params": {"amount": True, "account": {}}, "id": 1}, "amount"),
    ({"method": "CancelTransaction", "params": {"id": "a" * 24, "reason": "5"}, "id": 1}, "reason"),
    ({"method": "GetStatement", "params": {"from": 1}, "id": 1}, "to"),
    ({"method": "ChangePassword", "params": {"password": "  "}, "id": 1}, "password"),
])
async def test_invalid_requests_get_32600_naming_the_field(client, body, data):
    status, answer = await rpc(client, body)
    assert (status, answer["error"]["code"], answer["error"].get("data")) == (200, -32600, data)


async def test_cancel_reason_is_checked_before_anything_changes(client, payme):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    status, answer = await rpc(client, {"method": "CancelTransaction", "params": {"id": payme_id}, "id": 1})
    assert answer["error"]["code"] == -32600
    [tx] = await transactions()
    assert tx.state is PaymeState.CREATED


async def test_unknown_method_gets_32601_naming_it(client):
    status, body = await rpc(client, {"method": "DropDatabase", "params": {}, "id": "abc"})
    assert (status, body["error"]["code"], body["error"]["data"], body["id"]) == (200, -32601, "DropDatabase", "abc")


async def test_non_post_gets_32300_after_authentication(client):
    status, body = await rpc(client, None, raw=b"", method="GET")
    assert (status, body["error"]["code"]) == (200, -32300)
    status, body = await rpc(client, None, raw=b"", method="GET", key=None)
    assert (status, body["error"]["code"]) == (200, -32504)


async def test_oversized_body_gets_413_and_changes_nothing(client):
    status, _ = await rpc(client, None, raw=b'{"pad": "' + b"x" * (1024 * 1024 + 1) + b'"}')
    assert status == 413
    assert await transactions() == []


async def test_text_json_content_type_and_any_header_are_accepted(client):
    for content_type in ("text/json", "text/plain", "application/x-www-form-urlencoded"):
        status, body = await rpc(client, CHECK_TX, headers={"Content-Type": content_type})
        assert (status, body["error"]["code"]) == (200, -31003), content_type


async def test_wrong_amount_gets_31001_from_check_and_create_and_stores_nothing(client, payme):
    invoice = await new_invoice(client)
    for amount in (PRICE_MONTH_UZS - 1, PRICE_MONTH_UZS + 1, PRICE_MONTH_UZS * 100, 0, -PRICE_MONTH_UZS):
        assert error_code(await payme.check(client.session, invoice["label"], amount)) == -31001, amount
        assert error_code(await payme.create(client.session, new_payme_id(), invoice["label"], amount)) == -31001
    assert await transactions() == [] and await operations() == []


async def test_amount_is_read_exactly_never_as_a_float(client):
    invoice = await new_invoice(client)
    label = invoice["label"].encode()
    whole = b'{"method":"CheckPerformTransaction","id":1,"params":{"amount":3500000.00,"account":{"order_id":"%s"}}}'
    status, body = await rpc(client, None, raw=whole % label)
    assert body["result"] == {"allow": True}
    fraction = whole.replace(b"3500000.00", b"3500000.0000000001")
    status, body = await rpc(client, None, raw=fraction % label)
    assert body["error"]["code"] == -31001


@pytest.mark.parametrize("account", [None, {}, {"order_id": ""}, {"order_id": None}, {"order_id": ["x"]},
                                     {"order_id": "inv_doesnotexist"}, {"order_id": 12345}, {"other": "x"}])
async def test_missing_or_unknown_account_gets_31050_naming_the_field(client, payme, account):
    params = {"amount": PRICE_MONTH_UZS} | ({"account": account} if account is not None else {})
    status, body = await rpc(client, {"method": "CheckPerformTransaction", "params": params, "id": 3})
    assert status == 200 and payme.account_error(payme_answer(body)) and body["error"]["code"] == -31050


def payme_answer(body: object):
    from webhook_server.emulators.payme import RpcResult

    return RpcResult("CheckPerformTransaction", 200, body)


async def test_a_configured_account_field_is_the_one_read_and_named(plans, clock, redis_conn):
    app = create_app(payme_settings(payme_account_field="invoice"), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as custom:
        invoice = await new_invoice(custom)
        emulator = emulator_for(custom, clock, account_field="invoice")
        assert (await emulator.check(custom.session, invoice["label"], PRICE_MONTH_UZS)).result == {"allow": True}
        status, body = await rpc(custom, {"method": "CheckPerformTransaction", "id": 1,
                                          "params": {"amount": PRICE_MONTH_UZS,
                                                     "account": {"order_id": invoice["label"]}}})
        assert (body["error"]["code"], body["error"]["data"]) == (-31050, "invoice")
        steps = await emulator.sandbox(custom.session, invoice["label"], PRICE_MONTH_UZS, perform=False,
                                       security=False)
        assert [step.name for step in steps if not step.ok] == []


async def test_refused_cancel_after_perform_gets_31007_and_keeps_the_payment(plans, clock, redis_conn):
    app = create_app(payme_settings(payme_cancel_after_perform=False), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as custom:
        invoice = await new_invoice(custom)
        emulator = emulator_for(custom, clock)
        payme_id, _ = await emulator.pay(custom.session, invoice["label"], PRICE_MONTH_UZS)
        answer = await emulator.by_id(custom.session, "CancelTransaction", payme_id, reason=5)
        assert error_code(answer) == -31007 and set(answer.body["error"]["message"]) == {"ru", "uz", "en"}
        check = await emulator.by_id(custom.session, "CheckTransaction", payme_id)
        assert (check.result["state"], check.result["cancel_time"], check.result["reason"]) == (2, 0, None)
        waiting = new_payme_id()
        other = await new_invoice(custom)
        await emulator.create(custom.session, waiting, other["label"], PRICE_MONTH_UZS)
        assert (await emulator.by_id(custom.session, "CancelTransaction", waiting, reason=3)).result["state"] == -1


async def test_disabled_payme_route_answers_404(plans, clock, redis_conn):
    from tests.conftest import make_settings

    app = create_app(make_settings(), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as bare:
        status, _ = await rpc(bare, CHECK_TX)
        assert status == 404
