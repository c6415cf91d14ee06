"""Orders through the admin API: POST /api/invoices with amounts, paid through YooMoney, no subscription."""

from __future__ import annotations

import asyncio
import json

from db import Invoice, InvoiceKind, InvoiceStatus, Subscription
from tests.conftest import AUTH
from tests.helpers import get_json, notification, post_notification

ORDER = {"user_id": 77, "amounts": {"RUB": 50000, "UZS": 6000000}, "description": "100 credits",
         "order_id": "shop-1001", "metadata": {"sku": "credits-100", "qty": 1, "gift": False}}


async def post_order(client, body) -> tuple[int, dict]:
    response = await client.post("/api/invoices", data=json.dumps(body).encode(),
                                 headers={**AUTH, "Content-Type": "application/json"})
    return response.status, await response.json()


async def test_an_order_is_made_once_per_order_id_and_found_by_it(client, settings):
    status, made = await post_order(client, ORDER)
    assert status == 201
    assert made["kind"] == "order" and made["plan"] is None and made["status"] == "pending"
    assert made["amounts"] == ORDER["amounts"] and made["metadata"] == ORDER["metadata"]
    assert made["description"] == "100 credits" and made["order_id"] == "shop-1001"
    assert made["pay_url"].startswith(f"{settings.public_base_url}/pay/{made['label']}?exp=")

    status, again = await post_order(client, ORDER)
    assert status == 200 and again["label"] == made["label"]
    status, found = await get_json(client, "/api/invoices?order_id=shop-1001")
    assert status == 200 and found["label"] == made["label"] and found["metadata"] == ORDER["metadata"]
    status, missing = await get_json(client, "/api/invoices?order_id=shop-404")
    assert (status, missing["error"]) == (404, "invoice_not_found")
    assert await Invoice.find(Invoice.order_id == "shop-1001").count() == 1


async def test_concurrent_repeats_of_an_order_make_one_invoice(client):
    body = {**ORDER, "order_id": "shop-race"}
    answers = await asyncio.gather(*(post_order(client, body) for _ in range(12)))
    assert sorted(status for status, _ in answers) == [200] * 11 + [201]
    assert len({made["label"] for _, made in answers}) == 1
    assert await Invoice.find(Invoice.order_id == "shop-race").count() == 1


async def test_a_repeat_with_other_amounts_or_user_is_a_conflict(client):
    status, made = await post_order(client, {**ORDER, "order_id": "shop-2"})
    assert status == 201
    for changed in ({"amounts": {"RUB": 50001}}, {"user_id": 78}):
        status, answer = await post_order(client, {**ORDER, "order_id": "shop-2", **changed})
        assert (status, answer["error"]) == (409, "order_id_conflict")
        assert made["label"] in answer["message"]
    stored = await Invoice.find_one(Invoice.order_id == "shop-2")
    assert stored.amounts == ORDER["amounts"] and stored.user_id == 77


async def test_bad_orders_get_400_with_a_clear_code_and_make_nothing(client):
    deep: object = "x"
    for _ in range(10):
        deep = {"a": deep}
    cases = [
        ({"amounts": {}}, "invalid_amounts"),
        ({"amounts": [50000]}, "invalid_amounts"),
        ({"amounts": {"RUB": "500.00"}}, "invalid_amounts"),
        ({"amounts": {"RUB": 500.5}}, "invalid_amounts"),
        ({"amounts": {"RUB": True}}, "invalid_amounts"),
        ({"amounts": {"EUR": 50000}}, "unknown_currency"),
        ({"amounts": {"XTR": 50}}, "unknown_currency"),
        ({"amounts": {"RUB": 99}}, "amount_out_of_range"),
        ({"amounts": {"RUB": 0}}, "amount_out_of_range"),
        ({"amounts": {"RUB": -50000}}, "amount_out_of_range"),
        ({"amounts": {"RUB": 100_000_001}}, "amount_out_of_range"),
        ({"amounts": {"UZS": 10**30}}, "amount_out_of_range"),
        ({"description": ""}, "invalid_description"),
        ({"description": "x" * 129}, "invalid_description"),
        ({"description": 5}, "invalid_description"),
        ({"description": "line\nbreak"}, "invalid_description"),
        ({"order_id": ""}, "invalid_order_id"),
        ({"order_id": 1001}, "invalid_order_id"),
        ({"order_id": "a b"}, "invalid_order_id"),
        ({"order_id": "x" * 65}, "invalid_order_id"),
        ({"metadata": deep}, "invalid_metadata"),
        ({"metadata": {"list": [1, 2]}}, "invalid_metadata"),
        ({"metadata": {f"k{i}": i for i in range(17)}}, "invalid_metadata"),
        ({"metadata": {"note": "x" * 501}}, "invalid_metadata"),
        ({"metadata": {"$where": "1"}}, "invalid_metadata"),
        ({"metadata": {"n": 2**60}}, "invalid_metadata"),
        ({"metadata": "text"}, "invalid_metadata"),
        ({"plan": "month"}, "plan_or_amounts"),
    ]
    for change, code in cases:
        status, answer = await post_order(client, {**ORDER, "order_id": "shop-bad", **change})
        assert (status, answer["error"]) == (400, code), change
    huge = b'{"user_id": 77, "amounts": {"RUB": 1e999999999}, "description": "d"}'
    response = await client.post("/api/invoices", data=huge, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status == 400 and (await response.json())["error"] == "invalid_amounts"
    status, _ = await get_json(client, "/api/invoices?order_id=a%20b")
    assert status == 400
    assert await Invoice.find(Invoice.kind == InvoiceKind.ORDER).count() == 0


async def test_a_paid_order_is_paid_tells_the_user_and_grants_no_subscription(client, worker, notifier):
    status, made = await post_order(client, {**ORDER, "order_id": "shop-paid"})
    assert status == 201
    assert await post_notification(client, notification(made["label"], paid_minor=50000)) == 200
    await worker.drain()

    stored = await Invoice.find_one(Invoice.label == made["label"])
    assert stored.status is InvoiceStatus.PAID and stored.paid_amount == 50000
    assert await Subscription.find_one(Subscription.user_id == 77) is None
    assert [(n.kind, n.order_id, n.plan_title, n.period_end) for n in notifier.notices] == [
        ("order", "shop-paid", "100 credits", None)]
    status, found = await get_json(client, "/api/invoices?order_id=shop-paid")
    assert found["status"] == "paid" and found["refunded_amount"] == 0
    response = await client.post(f"/api/invoices/{made['label']}/refund", json={"amount": 100}, headers=AUTH)
    answer = await response.json()
    assert (response.status, answer["error"]) == (409, "refund_not_supported")  # YooMoney: by hand
    assert "by hand" in answer["message"]


async def test_an_order_paid_with_another_amount_is_not_paid(client, worker, notifier):
    status, made = await post_order(client, {**ORDER, "order_id": "shop-short"})
    assert await post_notification(client, notification(made["label"], paid_minor=49999)) == 200
    await worker.drain()
    assert (await Invoice.find_one(Invoice.label == made["label"])).status is InvoiceStatus.PENDING
    assert notifier.notices == []
