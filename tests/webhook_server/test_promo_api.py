"""Promo and gift codes: the admin API (HTTP to our app, Bearer auth, the API's error format), the atomic
claim of a use under many concurrent redemptions, and discounted invoices paid through the YooMoney
notification (the provider's amount check must take the discounted amount and refuse the full one)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from billing.invoices import get_invoice
from billing.promo import PromoRefused, claim_use, discounted_invoice, release_expired
from billing.renewals.scheduler import tick
from billing.subscriptions import get_subscription, is_active
from db import Invoice, InvoiceStatus
from db.promo import PromoCode
from tests.conftest import AUTH, FrozenClock
from tests.helpers import get_json, notification, post_notification
from webhook_server.keys import PLANS, PROVIDERS, QUEUES, SETTINGS
from webhook_server.renewal_services import renewal_services
from webhook_server.runner import InProcessWorker

PERCENT = {"code": "spring-25", "kind": "percent", "percent_off": 25, "max_uses": 5, "plans": ["month"]}


async def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    response = await client.post("/api/promo-codes", json=body, headers=AUTH if headers is None else headers)
    return response.status, await response.json()


async def test_codes_are_created_listed_and_shown_case_insensitively(client: TestClient, clock: FrozenClock) -> None:
    expires = (clock() + timedelta(days=10)).isoformat()
    status, body = await post(client, {**PERCENT, "expires_at": expires})
    assert status == 201 and body["code"] == "SPRING-25" and body["uses"] == 0 and body["expires_at"] == expires
    fixed = {"code": "MINUS100", "kind": "fixed", "amounts_off": {"RUB": 10000, "UZS": 1000000}, "max_uses": 1}
    assert (await post(client, fixed))[0] == 201
    gift = {"code": "gift-week", "kind": "gift", "gift_plan": "month", "gift_days": 7, "max_uses": 100}
    assert (await post(client, gift))[0] == 201

    status, listed = await get_json(client, "/api/promo-codes")
    assert status == 200 and {code["code"] for code in listed["promo_codes"]} == {"SPRING-25", "MINUS100",
                                                                                   "GIFT-WEEK"}
    await claim_use("Spring-25", 11, "month", now=clock())
    status, shown = await get_json(client, "/api/promo-codes/spring-25")
    assert status == 200 and shown["uses"] == 1 and [r["user_id"] for r in shown["redemptions"]] == [11]
    assert (await get_json(client, "/api/promo-codes/NOPE-NOPE"))[0] == 404
    assert (await get_json(client, "/api/promo-codes/bad%20code!"))[0] == 400


async def test_a_duplicate_code_in_any_case_is_409(client: TestClient) -> None:
    assert (await post(client, PERCENT))[0] == 201
    status, body = await post(client, {**PERCENT, "code": "SPRING-25", "percent_off": 10})
    assert status == 409 and body["error"] == "promo_code_exists"
    assert await PromoCode.find_all().count() == 1


async def test_without_the_bearer_token_nothing_is_created_or_shown(client: TestClient) -> None:
    assert (await post(client, PERCENT, headers={}))[0] == 401
    assert (await post(client, PERCENT, headers={"Authorization": "Bearer wrong"}))[0] == 401
    assert (await client.get("/api/promo-codes")).status == 401
    assert await PromoCode.find_all().count() == 0


@pytest.mark.parametrize("change", [
    {"percent_off": 101}, {"percent_off": 100}, {"percent_off": 0}, {"percent_off": 2**70}, {"percent_off": "25"},
    {"percent_off": True}, {"max_uses": 0}, {"max_uses": 10**30}, {"code": "ab"}, {"code": "x" * 33},
    {"code": "SPRING 25"}, {"code": "ВЕСНА25"}, {"code": 12345}, {"kind": "bogus"}, {"plans": ["lifetime"]},
    {"plans": "month"}, {"expires_at": "tomorrow"}, {"expires_at": "2030-01-01T00:00:00"},
    {"kind": "fixed"}, {"kind": "fixed", "amounts_off": {"USD": 100}}, {"kind": "fixed", "amounts_off": {"RUB": -1}},
    {"kind": "fixed", "amounts_off": {"RUB": 10**40}}, {"kind": "gift", "gift_plan": "month", "gift_days": 0},
    {"kind": "gift", "gift_plan": "nope", "gift_days": 7}, {"kind": "gift", "gift_plan": "month", "gift_days": 10**9},
])
async def test_bad_definitions_are_400_with_the_reason(client: TestClient, change: dict[str, Any]) -> None:
    status, body = await post(client, {**PERCENT, **change})
    assert status == 400 and body["error"] == "bad_request" and body["message"], body
    assert await PromoCode.find_all().count() == 0


async def test_malformed_bodies_are_400(client: TestClient) -> None:
    for raw in (b"{", b"[]", b"\xff\xfe", b"[" * 5000):
        response = await client.post("/api/promo-codes", data=raw, headers={**AUTH, "Content-Type": "application/json"})
        assert response.status == 400
    assert await PromoCode.find_all().count() == 0


async def test_concurrent_redemptions_never_pass_the_limit(client: TestClient, clock: FrozenClock) -> None:
    assert (await post(client, PERCENT))[0] == 201

    async def redeem(user_id: int) -> str:
        try:
            await claim_use("spring-25", user_id, "month", now=clock())
        except PromoRefused as refused:
            return refused.reason
        return "ok"

    outcomes = await asyncio.gather(*(redeem(1000 + n) for n in range(60)))
    assert outcomes.count("ok") == 5 and outcomes.count("used_up") == 55
    _, shown = await get_json(client, "/api/promo-codes/SPRING-25")
    assert shown["uses"] == 5 and len(shown["redemptions"]) == 5


async def test_the_same_user_twice_expiry_and_wrong_plan_are_refused_without_burning_a_use(
        client: TestClient, clock: FrozenClock) -> None:
    expires = (clock() + timedelta(days=1)).isoformat()
    assert (await post(client, {**PERCENT, "expires_at": expires}))[0] == 201
    await claim_use("SPRING-25", 1, "month", now=clock())
    for args, reason in (((1, "month"), "already_used"), ((2, "year"), "wrong_plan"),
                         ((3, "month", clock() + timedelta(days=2)), "expired")):
        user_id, plan, *when = args
        with pytest.raises(PromoRefused) as refused:
            await claim_use("spring-25", user_id, plan, now=when[0] if when else clock())
        assert refused.value.reason == reason
    with pytest.raises(PromoRefused) as unknown:
        await claim_use("NO-SUCH", 4, "month", now=clock())
    assert unknown.value.reason == "unknown"
    _, shown = await get_json(client, "/api/promo-codes/SPRING-25")
    assert shown["uses"] == 1


async def discounted(client: TestClient, clock: FrozenClock, body: dict[str, Any], user_id: int = 21) -> Invoice:
    assert (await post(client, body))[0] == 201
    return await discounted_invoice(body["code"], client.app[PLANS].get("month"), user_id, now=clock(),
                                    ttl_seconds=client.app[SETTINGS].invoice_ttl_seconds)


async def test_a_percent_code_fixes_the_discount_on_a_new_invoice_the_yoomoney_check_compares(
        client: TestClient, worker: InProcessWorker, clock: FrozenClock) -> None:
    invoice = await discounted(client, clock, PERCENT)
    assert invoice.amounts == {"RUB": 22425, "UZS": 2625000, "XTR": 187} and invoice.promo_code == "SPRING-25"

    assert await post_notification(client, notification(invoice.label, paid_minor=22424)) == 200
    await worker.drain()
    assert (await get_invoice(invoice.label)).status is InvoiceStatus.PENDING, "less than the discounted price"
    assert await get_subscription(21) is None

    assert await post_notification(client, notification(invoice.label, paid_minor=22425)) == 200
    await worker.drain()
    assert (await get_invoice(invoice.label)).status is InvoiceStatus.PAID
    subscription = await get_subscription(21)
    assert subscription is not None and is_active(subscription, clock())


async def test_a_fixed_code_takes_its_amount_off_in_the_currencies_it_names(
        client: TestClient, worker: InProcessWorker, clock: FrozenClock) -> None:
    invoice = await discounted(client, clock, {"code": "MINUS100", "kind": "fixed", "amounts_off": {"RUB": 10000},
                                               "max_uses": 3})
    assert invoice.amounts == {"RUB": 19900}
    assert await post_notification(client, notification(invoice.label, paid_minor=19900)) == 200
    await worker.drain()
    assert (await get_invoice(invoice.label)).status is InvoiceStatus.PAID


async def test_an_unpaid_discounted_invoice_gives_its_use_back_once_and_is_never_paid_after(
        client: TestClient, worker: InProcessWorker, clock: FrozenClock) -> None:
    invoice = await discounted(client, clock, {**PERCENT, "max_uses": 1})
    assert await release_expired(clock()) == 0, "still payable"
    clock.now = invoice.expires_at + timedelta(seconds=1)
    services = renewal_services(client.app[SETTINGS], client.app[QUEUES], client.app[PROVIDERS], clock)
    assert (await tick(clock(), services)).promo_released == 1, "the scheduler gives it back"
    assert await release_expired(clock()) == 0, "once"
    _, shown = await get_json(client, "/api/promo-codes/SPRING-25")
    assert shown["uses"] == 0

    assert await post_notification(client, notification(invoice.label, paid_minor=22425)) == 200  # paid too late
    await worker.drain()
    assert (await get_invoice(invoice.label)).status is InvoiceStatus.PENDING
    assert await get_subscription(21) is None, "a late payment of a released use is extra money, not access"
    again = await discounted_invoice("spring-25", client.app[PLANS].get("month"), 21, now=clock(), ttl_seconds=60)
    assert again.label != invoice.label, "the user may use the code again on a new invoice"
