"""GetStatement, ChangePassword, and the payment page's "Pay with Payme" through the emulator."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestServer

from billing.providers.payme import Payme
from billing.providers.payme.protocol import to_ms
from db.payme import PaymeState
from settings import ConfigError
from tests.e2e.test_demo import FormReader
from tests.helpers import get_json, new_invoice
from tests.payme_support import (  # noqa: F401 - fixtures
    PAYME_CHECKOUT,
    PAYME_KEY,
    PAYME_MERCHANT,
    PRICE_MONTH_UZS,
    error_code,
    payme,
    settings,
    transactions,
)
from webhook_server.emulators.payme import checkout_link, new_payme_id, read_checkout, simulate

STATEMENT_KEYS = {"id", "time", "amount", "account", "create_time", "perform_time", "cancel_time", "transaction",
                  "state", "reason", "receivers"}


async def test_statement_lists_the_period_by_paymes_time_oldest_first(client, clock, payme):
    t0 = to_ms(clock.now)
    made = []
    for offset in (2000, 0, 1000, 3000):
        invoice = await new_invoice(client)
        payme_id = new_payme_id()
        await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS, payme_time=t0 + offset)
        made.append((offset, payme_id, invoice["label"]))
    performed = made[2][1]
    await payme.by_id(client.session, "PerformTransaction", performed)
    await payme.by_id(client.session, "CancelTransaction", made[1][1], reason=3)

    answer = await payme.call(client.session, "GetStatement", {"from": t0, "to": t0 + 2000})
    items = answer.result["transactions"]
    assert [item["time"] for item in items] == [t0, t0 + 1000, t0 + 2000], "bounds inclusive, ascending"
    assert all(set(item) == STATEMENT_KEYS for item in items)
    first, second, _ = items
    assert (first["state"], first["reason"], first["cancel_time"]) == (-1, 3, to_ms(clock.now))
    assert (second["id"], second["state"], second["perform_time"]) == (performed, 2, to_ms(clock.now))
    assert second["account"] == {"order_id": made[2][2]} and second["amount"] == PRICE_MONTH_UZS
    assert second["receivers"] is None and isinstance(second["transaction"], str)
    empty = await payme.call(client.session, "GetStatement", {"from": t0 + 5000, "to": t0 + 9000})
    assert empty.result == {"transactions": []}


async def test_change_password_replaces_the_key_until_the_operator_sets_a_new_one(client, payme):
    changed = await payme.call(client.session, "ChangePassword", {"password": "NEW#key&from?payme"})
    assert changed.result == {"success": True}

    assert error_code(await payme.by_id(client.session, "CheckTransaction", new_payme_id())) == -32504
    payme.key = "NEW#key&from?payme"
    assert error_code(await payme.by_id(client.session, "CheckTransaction", new_payme_id())) == -31003

    assert await Payme(merchant_id=PAYME_MERCHANT, key=PAYME_KEY).active_key() == "NEW#key&from?payme"
    assert await Payme(merchant_id=PAYME_MERCHANT, key="operator-new").active_key() == "operator-new"


async def test_pay_page_offers_payme_with_the_base64_checkout_link(client):
    invoice = await new_invoice(client)
    parts = urlsplit(invoice["pay_url"])
    page = await (await client.get(f"{parts.path}?{parts.query}")).text()
    assert 'id="pay-payme"' in page
    reader = PaymeForm()
    reader.feed(page)
    assert reader.method == "get" and reader.action.startswith(PAYME_CHECKOUT + "/")
    params = read_checkout(reader.action.removeprefix(PAYME_CHECKOUT + "/"))
    assert params == {"m": PAYME_MERCHANT, "ac.order_id": invoice["label"], "a": str(PRICE_MONTH_UZS),
                      "c": invoice["pay_url"] + "&returned=1"}


class PaymeForm(FormReader):
    def __init__(self) -> None:
        super().__init__("pay-payme")


async def test_paying_through_the_emulators_checkout_page_activates(client, worker, clock, payme):
    invoice = await new_invoice(client, user_id=61)
    server = TestServer(payme.app())
    await server.start_server()
    try:
        parts = urlsplit(invoice["pay_url"])
        page = await (await client.get(f"{parts.path}?{parts.query}")).text()
        reader = PaymeForm()
        reader.feed(page)
        encoded = reader.action.removeprefix(PAYME_CHECKOUT + "/")
        checkout = server.make_url(f"/checkout/{encoded}")
        async with client.session.get(checkout) as shown:
            assert shown.status == 200 and "35000.00 UZS" in await shown.text()
        async with client.session.post(checkout, allow_redirects=False) as paid:
            assert paid.status == 303 and paid.headers["Location"] == invoice["pay_url"] + "&returned=1"
    finally:
        await server.close()
    await worker.drain()
    assert [a.method for a in payme.calls] == ["CheckPerformTransaction", "CreateTransaction", "PerformTransaction"]
    [tx] = await transactions()
    assert tx.state is PaymeState.PERFORMED and tx.perform_time == to_ms(clock.now)
    _, subscription = await get_json(client, "/api/users/61/subscription")
    assert subscription["status"] == "active"


async def test_emulator_checkout_refuses_a_foreign_merchant_link(client, payme):
    server = TestServer(payme.app())
    await server.start_server()
    try:
        link = checkout_link(str(server.make_url("/checkout")), {"m": "0" * 24, "ac.order_id": "inv_x", "a": "1"})
        async with client.session.get(link) as page:
            assert page.status == 400
    finally:
        await server.close()
    assert payme.calls == []


async def test_a_statement_answer_is_unchanged_by_later_clock_moves(client, clock, payme):
    invoice = await new_invoice(client)
    payme_id, _ = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    window = {"from": to_ms(clock.now) - 1, "to": to_ms(clock.now) + 1}
    before = await payme.call(client.session, "GetStatement", window)
    clock.now += timedelta(hours=1)
    after = await payme.call(client.session, "GetStatement", window)
    assert before.result == after.result and len(after.result["transactions"]) == 1


@pytest.mark.parametrize(("event", "status"), [("payment", "paid"), ("cancel", "pending"), ("refund", "refunded"),
                                               ("sandbox", "refunded")])
async def test_simulate_sends_what_payme_would_and_reports_success(client, worker, settings, event, status):
    invoice = await new_invoice(client)
    url = str(client.make_url("")).rstrip("/")
    assert await simulate(settings, client.session, url, event, invoice["label"], None) == 200
    await worker.drain()
    _, body = await get_json(client, f"/api/invoices/{invoice['label']}")
    assert body["status"] == status


async def test_simulate_with_an_amount_the_invoice_does_not_have_reports_failure(client, settings):
    invoice = await new_invoice(client)
    url = str(client.make_url("")).rstrip("/")
    assert await simulate(settings, client.session, url, "payment", invoice["label"], "35000.00") == 200
    other = await new_invoice(client)
    assert await simulate(settings, client.session, url, "payment", other["label"], "35000.01") == 400
    with pytest.raises(ConfigError):
        await simulate(settings, client.session, url, "payment", other["label"], "35000.001")
