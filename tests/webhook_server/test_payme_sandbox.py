"""Payme's sandbox (test.paycom.uz) scenario list, run by the emulator against our server over real HTTP,
and the worked Merchant API round trip of the reference, byte for byte where it gives bytes."""

from __future__ import annotations

from datetime import timedelta

from billing.providers.payme.protocol import to_ms
from db import Invoice, InvoiceStatus, OperationStatus, Subscription, SubscriptionStatus
from tests.helpers import new_invoice, operations
from tests.payme_support import PRICE_MONTH_UZS, payme, rpc, settings, transactions  # noqa: F401 - fixtures
from webhook_server.emulators.payme import Step, basic_auth


def failures(steps: list[Step]) -> list[tuple[str, object]]:
    return [(step.name, step.answer.body) for step in steps if not step.ok]


async def test_scenario_1_create_then_cancel_passes_every_check(client, worker, payme):
    invoice = await new_invoice(client)
    steps = await payme.sandbox(client.session, invoice["label"], PRICE_MONTH_UZS, perform=False)

    assert len(steps) == 6 * 3 + 12
    assert failures(steps) == []
    await worker.drain()
    assert (await Invoice.find_one(Invoice.label == invoice["label"])).status is InvoiceStatus.PENDING
    assert await operations() == []


async def test_scenario_2_create_perform_cancel_passes_every_check(client, worker, clock, notifier, payme):
    invoice = await new_invoice(client, user_id=77)
    steps = await payme.sandbox(client.session, invoice["label"], PRICE_MONTH_UZS, perform=True)

    assert failures(steps) == []
    await worker.drain()
    assert (await Invoice.find_one(Invoice.label == invoice["label"])).status is InvoiceStatus.REFUNDED
    subscription = await Subscription.find_one(Subscription.user_id == 77)
    assert (subscription.status, subscription.current_period_end) == (SubscriptionStatus.EXPIRED, clock.now)
    [operation] = await operations()
    assert operation.status is OperationStatus.REVERSED
    assert len(notifier.reversals) == 1


async def test_scenarios_1_then_2_pass_on_the_same_invoice(client, worker, payme):
    invoice = await new_invoice(client)
    first = await payme.sandbox(client.session, invoice["label"], PRICE_MONTH_UZS, perform=False)
    second = await payme.sandbox(client.session, invoice["label"], PRICE_MONTH_UZS, perform=True, security=False)
    assert failures(first + second) == []
    assert sorted(int(tx.state) for tx in await transactions()) == [-2, -1]


async def test_the_reference_round_trip_for_inv_42(client, clock, settings):
    """§9 of the reference: invoice inv-42 at 3 500 000 tiyin, Payme ids 5305e3bab097f420a62ced0b/…0c."""
    await Invoice(label="inv-42", user_id=5, plan="month", amounts={"UZS": 3500000, "RUB": 29900}, period_days=30,
                  created_at=clock.now, expires_at=clock.now + timedelta(days=1)).insert()
    check = {"method": "CheckPerformTransaction", "params": {"amount": 3500000, "account": {"order_id": "inv-42"}},
             "id": 1}
    assert await rpc(client, check) == (200, {"jsonrpc": "2.0", "id": 1, "result": {"allow": True}})

    status, body = await rpc(client, {**check, "params": {"amount": 350000, "account": {"order_id": "inv-42"}}})
    assert (status, body["id"], body["error"]["code"], sorted(body["error"]["message"])) == (
        200, 1, -31001, ["en", "ru", "uz"])
    assert "data" not in body["error"] and "result" not in body

    status, body = await rpc(client, {**check, "params": {"amount": 3500000, "account": {"order_id": "nope"}}})
    assert (body["error"]["code"], body["error"]["data"], body["id"]) == (-31050, "order_id", 1)

    t = to_ms(clock.now)
    create = {"method": "CreateTransaction", "id": 2,
              "params": {"id": "5305e3bab097f420a62ced0b", "time": t, "amount": 3500000,
                         "account": {"order_id": "inv-42"}}}
    _, first = await rpc(client, create)
    assert first["result"]["state"] == 1 and first["result"]["create_time"] == t
    assert first["result"]["receivers"] is None and isinstance(first["result"]["transaction"], str)
    clock.now += timedelta(seconds=1)
    _, again = await rpc(client, create)
    assert again["result"] == first["result"]
    second_id = {**create, "params": {**create["params"], "id": "5305e3bab097f420a62ced0c"}}
    _, refused = await rpc(client, second_id)
    assert refused["error"]["code"] == -31008

    clock.now = clock.now - timedelta(seconds=1) + timedelta(milliseconds=43_200_001)
    perform = {"method": "PerformTransaction", "id": 3, "params": {"id": "5305e3bab097f420a62ced0b"}}
    _, late = await rpc(client, perform)
    assert late["error"]["code"] == -31008
    _, state = await rpc(client, {"method": "CheckTransaction", "id": 4, "params": {"id": "5305e3bab097f420a62ced0b"}})
    assert (state["result"]["state"], state["result"]["reason"]) == (-1, 4)


async def test_the_reference_authorization_vector_is_accepted(plans, clock, redis_conn):
    from aiohttp.test_utils import TestClient, TestServer

    from tests.payme_support import payme_settings
    from webhook_server.app import create_app

    app = create_app(payme_settings(payme_key="TEST_KEY_123"), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as test_client:
        assert basic_auth("TEST_KEY_123") == "Basic UGF5Y29tOlRFU1RfS0VZXzEyMw=="
        body = {"method": "CheckTransaction", "params": {"id": "5305e3bab097f420a62ced0b"}, "id": 9}
        status, answer = await rpc(test_client, body, key=None,
                                   headers={"Authorization": "Basic UGF5Y29tOlRFU1RfS0VZXzEyMw=="})
        assert (status, answer["error"]["code"]) == (200, -31003), "authenticated: the id is simply unknown"
        status, answer = await rpc(test_client, body, key="TEST_KEY_124")
        assert (status, answer["error"]["code"], answer["id"]) == (200, -32504, 9)
