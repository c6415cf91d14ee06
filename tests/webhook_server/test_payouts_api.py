"""The admin REST API for payouts: list with filters and paging, one claim, Accept and Reject, the balance; Bearer
auth on every route, and never a full card number or phone in an answer."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from db.payouts import ClaimStatus
from tests.conftest import AUTH
from tests.konsol_support import (  # noqa: F401
    AMOUNT,
    CARD,
    OTHER_CARD,
    PHONE,
    SBER,
    filed_claim,
    konsol,
    konsol_server,
    payouts,
    settings,
    stored,
)
from tests.webhook_server.test_redis_faults import free_port


async def call(client: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
               ) -> tuple[int, Any]:
    response = await client.request(method, path, headers=AUTH if headers is None else headers,
                                    data=json.dumps(body) if isinstance(body, dict) else body)
    return response.status, await response.json()


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/payouts"), ("GET", "/api/payouts/balance"), ("GET", "/api/payouts/po_x"),
    ("POST", "/api/payouts/po_x/accept"), ("POST", "/api/payouts/po_x/reject"),
])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}])
async def test_every_payout_route_needs_the_admin_token(client, method, path, headers):
    status, body = await call(client, method, path, headers=headers)
    assert (status, body["error"]) == (401, "unauthorized")


async def test_claims_are_listed_newest_first_with_filters_and_paging(client, clock):
    first = await filed_claim(client, clock.now, user_id=1)
    clock.now += timedelta(seconds=1)
    second = await filed_claim(client, clock.now, user_id=2, card=None, phone=PHONE, bank_id=SBER)
    clock.now += timedelta(seconds=1)
    third = await filed_claim(client, clock.now, user_id=1, card=OTHER_CARD)

    status, body = await call(client, "GET", "/api/payouts")
    assert status == 200 and body["total"] == 3
    assert [item["label"] for item in body["items"]] == [third.label, second.label, first.label]
    status, body = await call(client, "GET", "/api/payouts?user_id=1&method=card&per_page=1&page=2")
    assert (body["total"], [item["label"] for item in body["items"]]) == (2, [first.label])
    status, body = await call(client, "GET", "/api/payouts?status=paid")
    assert (status, body["items"], body["total"]) == (200, [], 0)
    status, body = await call(client, "GET", "/api/payouts?method=fps")
    [sbp] = body["items"]
    assert (sbp["phone"], sbp["bank_name"], sbp["destination"]) == (
        "+7******4567", "Сбербанк", "+7******4567, Сбербанк")


@pytest.mark.parametrize("query", ["status=lost", "method=cash", "page=0", "per_page=201", "user_id=-1", "page=x"])
async def test_bad_list_filters_are_400(client, query):
    status, body = await call(client, "GET", f"/api/payouts?{query}")
    assert status == 400 and body["error"] == "bad_request"


async def test_one_claim_shows_its_masked_destination_only(client, clock):
    claim = await filed_claim(client, clock.now)
    status, body = await call(client, "GET", f"/api/payouts/{claim.label}")
    assert status == 200
    assert (body["status"], body["amount"], body["currency"], body["card_mask"], body["destination"]) == (
        "new", AMOUNT, "RUB", "220070******6412", "•••• 6412")
    assert CARD not in json.dumps(body) and "card_encrypted" not in body
    status, body = await call(client, "GET", "/api/payouts/po_missing")
    assert (status, body["error"]) == (404, "payout_not_found")


async def test_accept_through_the_api_makes_the_payout(client, worker, konsol, payouts, clock):
    claim = await filed_claim(client, clock.now)
    status, body = await call(client, "POST", f"/api/payouts/{claim.label}/accept")
    assert (status, body["status"], body["decided_by"]) == (202, "accepted", "admin API")
    await worker.drain()
    assert len(konsol.created()) == 1 and (await stored(claim.label)).status is ClaimStatus.SUBMITTED

    status, body = await call(client, "POST", f"/api/payouts/{claim.label}/reject", {"reason": "late"})
    assert (status, body["error"]) == (409, "already_decided") and "admin API" in body["message"]


async def test_24_concurrent_api_accepts_make_one_payout(client, worker, konsol, payouts, clock):
    claim = await filed_claim(client, clock.now)
    answers = await asyncio.gather(*(call(client, "POST", f"/api/payouts/{claim.label}/accept") for _ in range(24)))
    await worker.drain()
    assert {status for status, _ in answers} == {202}, "accepted, by this call or a concurrent one"
    assert len(konsol.created()) == 1


async def test_reject_needs_a_reason_and_tells_the_user(client, worker, clock, notifier):
    claim = await filed_claim(client, clock.now)
    for bad in ({}, {"reason": "  "}, {"reason": 5}, b"{broken", b"[]"):
        status, body = await call(client, "POST", f"/api/payouts/{claim.label}/reject", bad)
        assert (status, body["error"]) == (400, "bad_request"), bad
    status, body = await call(client, "POST", f"/api/payouts/{claim.label}/reject", {"reason": "not a partner"})
    assert (status, body["status"], body["reject_reason"]) == (200, "rejected", "not a partner")
    await worker.drain()
    assert [n.event for n in notifier.payouts] == ["filed", "rejected"]
    assert (await stored(claim.label)).card_encrypted is None
    status, body = await call(client, "POST", f"/api/payouts/{claim.label}/accept")
    assert status == 409
    assert (await call(client, "POST", "/api/payouts/po_missing/accept"))[0] == 404


async def test_the_balance_comes_from_konsol(client, konsol):
    konsol.balance = 12345678
    status, body = await call(client, "GET", "/api/payouts/balance")
    assert status == 200
    assert body == {"accounts": [{"id": "nominal-1", "balance": 12345678, "currency": "RUB",
                                  "balance_text": "123456.78"}], "total": {"RUB": 12345678}}
    konsol.fail_next("balance", 503)
    assert (await call(client, "GET", "/api/payouts/balance"))[0] == 503
    konsol.fail_next("balance", 403, "access denied")
    status, body = await call(client, "GET", "/api/payouts/balance")
    assert (status, body["error"]) == (502, "provider_refused") and "access denied" in body["message"]


async def test_the_balance_is_503_when_konsol_is_unreachable_and_404_when_payouts_are_off(client, settings):
    settings.konsol_base_url = f"http://127.0.0.1:{free_port()}"
    assert (await call(client, "GET", "/api/payouts/balance"))[0] == 503
    settings.konsol_api_token = None
    status, body = await call(client, "GET", "/api/payouts/balance")
    assert (status, body["error"]) == (404, "payouts_disabled")
