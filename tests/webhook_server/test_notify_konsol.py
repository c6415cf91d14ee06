"""POST /notify/konsol through real HTTP: authenticity (our HMAC, then always konsol.pro's own API), exactly-once
outcomes, the answers konsol.pro reads, and the webhook log."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from billing.errors import LedgerUnavailable
from billing.providers.konsol import sign_webhook, url_token, webhook_body
from db import Operation
from db.payouts import ClaimStatus, KonsolWebhookLog
from tests.konsol_support import (  # noqa: F401
    AMOUNT,
    CARD,
    KONSOL_SECRET,
    KONSOL_TOKEN,
    accepted_claim,
    konsol,
    konsol_server,
    payouts,
    settings,
    stored,
)
from webhook_server.app import create_app


@pytest.fixture
async def submitted(client, worker, konsol, payouts, clock) -> tuple[str, str]:
    """A claim konsol.pro holds as a `created` payment: (claim label, payment id)."""
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [payment] = konsol.created()
    return claim.label, payment["id"]


def body_for(payment_id: str, status: str = "executed", amount: int = AMOUNT) -> bytes:
    return webhook_body(payment_id, amount, status, "2025-03-01T12:00:00Z")


async def post(client: TestClient, body: bytes, *, signed: bool = True, query: str = "",
               **headers: str) -> tuple[int, Any]:
    sent = {"Content-Type": "application/json", **headers}
    if signed:
        sent["X-Konsol-Signature"] = sign_webhook(body, KONSOL_SECRET)
    response = await client.post("/notify/konsol" + query, data=body, headers=sent)
    text = await response.text()
    return response.status, json.loads(text) if text.startswith("{") else text


async def konsol_ops() -> list[Operation]:
    return await Operation.find({"provider": "konsol"}).to_list()


async def test_a_signed_webhook_is_checked_against_konsol_and_pays_the_claim_once(client, worker, konsol, submitted,
                                                                                  notifier):
    label, payment_id = submitted
    konsol.payments[payment_id]["status"] = "executed"

    assert await post(client, body_for(payment_id)) == (200, {"ok": True})
    await worker.drain()
    assert (await stored(label)).status is ClaimStatus.PAID
    assert [n.event for n in notifier.payouts].count("paid") == 1
    [entry] = await KonsolWebhookLog.find_all().to_list()
    assert (entry.authenticated_by, entry.payment_id, entry.claim_label, entry.fetched_status, entry.outcome,
            entry.http_status, entry.event) == ("signature", payment_id, label, "executed", "ok", 200,
                                                "payment.completed")


async def test_the_url_token_authenticates_a_webhook_konsol_does_not_sign(client, konsol, submitted):
    label, payment_id = submitted
    konsol.payments[payment_id]["status"] = "failed"
    assert await post(client, body_for(payment_id, "failed"), signed=False,
                      query=f"?token={url_token(KONSOL_SECRET)}") == (200, {"ok": True})
    assert (await stored(label)).status is ClaimStatus.FAILED


@pytest.mark.parametrize(("headers", "query"), [
    ({}, ""), ({"X-Konsol-Signature": "0" * 64}, ""), ({}, "?token=" + "0" * 64),
    ({"X-Konsol-Signature": sign_webhook(b"another body", KONSOL_SECRET)}, ""),
])
async def test_a_forged_webhook_is_refused_and_changes_nothing(client, worker, konsol, submitted, headers, query):
    label, payment_id = submitted
    konsol.payments[payment_id]["status"] = "executed"  # even when konsol.pro would confirm it
    calls = len(konsol.calls)

    status, body = await post(client, body_for(payment_id), signed=False, query=query, **headers)
    await worker.drain()
    assert (status, body) == (401, {"ok": False, "error": "unauthorized"})
    assert (await stored(label)).status is ClaimStatus.SUBMITTED and await konsol_ops() == []
    assert len(konsol.calls) == calls, "konsol.pro is not even asked"
    [entry] = await KonsolWebhookLog.find_all().to_list()
    assert entry.authenticated_by is None and entry.outcome == "unauthorized"


async def test_a_tampered_body_breaks_the_signature(client, konsol, submitted):
    label, payment_id = submitted
    signed = body_for(payment_id, "created")
    tampered = body_for(payment_id, "executed")
    response = await client.post("/notify/konsol", data=tampered, headers={
        "Content-Type": "application/json", "X-Konsol-Signature": sign_webhook(signed, KONSOL_SECRET)})
    assert response.status == 401
    assert (await stored(label)).status is ClaimStatus.SUBMITTED


async def test_the_body_never_decides_konsols_api_does(client, worker, konsol, submitted, notifier):
    label, payment_id = submitted  # konsol.pro still says "created"
    assert await post(client, body_for(payment_id, "executed")) == (200, {"ok": True})
    await worker.drain()
    assert (await stored(label)).status is ClaimStatus.SUBMITTED
    assert "paid" not in [n.event for n in notifier.payouts]


async def test_without_a_secret_a_forged_webhook_costs_one_api_read_and_changes_nothing(client, settings, konsol,
                                                                                         submitted):
    label, payment_id = submitted
    settings.konsol_webhook_secret = None  # the running app's own settings object
    assert await post(client, body_for(payment_id), signed=False) == (200, {"ok": True})
    assert (await stored(label)).status is ClaimStatus.SUBMITTED
    assert konsol.calls[-1] == ("GET", f"/api/v1/payments/{payment_id}")
    [entry] = await KonsolWebhookLog.find_all().to_list()
    assert entry.authenticated_by == "none"


async def test_duplicate_deliveries_change_the_claim_once(client, worker, konsol, submitted, notifier):
    label, payment_id = submitted
    konsol.payments[payment_id]["status"] = "executed"
    assert (await post(client, body_for(payment_id)))[0] == 200
    assert await post(client, body_for(payment_id)) == (200, {"ok": True, "duplicate": True})
    await worker.drain()

    assert len(await konsol_ops()) == 1
    assert [n.event for n in notifier.payouts].count("paid") == 1


async def test_24_concurrent_deliveries_pay_once(client, worker, konsol, submitted, notifier):
    label, payment_id = submitted
    konsol.payments[payment_id]["status"] = "executed"
    answers = await asyncio.gather(*(post(client, body_for(payment_id)) for _ in range(24)))
    await worker.drain()

    assert {status for status, _ in answers} == {200}
    assert sum(1 for _, body in answers if not body.get("duplicate")) == 1
    assert len(await konsol_ops()) == 1 and [n.event for n in notifier.payouts].count("paid") == 1
    assert await KonsolWebhookLog.find_all().count() == 24


async def test_a_failure_between_the_claim_update_and_the_notice_is_mended_by_the_redelivery(
    client, worker, konsol, submitted, notifier, queues
):
    label, payment_id = submitted
    konsol.payments[payment_id]["status"] = "executed"
    real = queues.enqueue_payout_notice

    async def redis_down(*args: Any) -> None:
        raise LedgerUnavailable("redis: ConnectionError")

    queues.enqueue_payout_notice = redis_down  # type: ignore[method-assign]
    assert await post(client, body_for(payment_id)) == (503, {"ok": False, "error": "retry"})
    queues.enqueue_payout_notice = real  # type: ignore[method-assign]
    assert (await stored(label)).status is ClaimStatus.PAID, "the state changed; only the notice was not queued"

    assert await post(client, body_for(payment_id)) == (200, {"ok": True, "duplicate": True})
    await worker.drain()
    assert [n.event for n in notifier.payouts].count("paid") == 1 and len(await konsol_ops()) == 1


async def test_an_unknown_payment_id_is_404_so_konsol_retries(client, submitted):
    assert await post(client, body_for("00000000-0000-0000-0000-000000000000")) == (
        404, {"ok": False, "error": "unknown_payment"})


async def test_konsols_amount_differing_from_the_claim_is_409_and_changes_nothing(client, worker, konsol, submitted,
                                                                                  notifier):
    label, payment_id = submitted
    konsol.payments[payment_id].update(status="executed", amount="1499.00")
    assert await post(client, body_for(payment_id)) == (409, {"ok": False, "error": "amount_mismatch"})
    await worker.drain()
    assert (await stored(label)).status is ClaimStatus.SUBMITTED and await konsol_ops() == []
    assert [n.event for n in notifier.payouts][-1] == f"alert:amount_mismatch:{payment_id}"


@pytest.mark.parametrize("status", [500, 503, 401])
async def test_when_konsol_cannot_be_asked_the_answer_makes_it_retry(client, konsol, submitted, status):
    label, payment_id = submitted
    konsol.payments[payment_id]["status"] = "executed"
    konsol.fail_next("get", status)
    assert await post(client, body_for(payment_id)) == (503, {"ok": False, "error": "retry"})
    assert (await stored(label)).status is ClaimStatus.SUBMITTED
    assert await post(client, body_for(payment_id)) == (200, {"ok": True})
    assert (await stored(label)).status is ClaimStatus.PAID


@pytest.mark.parametrize(("body", "content_type"), [
    (b"{not json", "application/json"), (b"[]", "application/json"), (b'{"event": "payment.completed"}',
                                                                      "application/json"),
    (b"id=1", "application/x-www-form-urlencoded"), (b"", "application/json"),
])
async def test_malformed_bodies_are_400(client, submitted, body, content_type):
    assert await post(client, body, **{"Content-Type": content_type}) == (400, {"ok": False, "error": "bad_request"})
    assert await konsol_ops() == []


@pytest.mark.parametrize("size", [64 * 1024 + 1, 1024 * 1024 + 1])
async def test_oversized_bodies_are_413(client, submitted, size):
    status, body = await post(client, b"{" + b" " * size + b"}")
    assert (status, body) == (413, {"ok": False, "error": "bad_request"})


async def test_an_address_outside_konsol_webhook_ips_is_refused_when_the_list_is_set(client, settings, konsol,
                                                                                     submitted):
    label, payment_id = submitted
    konsol.payments[payment_id]["status"] = "executed"
    settings.konsol_webhook_ips = ["84.201.153.160"]
    assert (await post(client, body_for(payment_id)))[0] == 401
    assert (await stored(label)).status is ClaimStatus.SUBMITTED
    settings.konsol_webhook_ips = ["127.0.0.0/8"]
    assert (await post(client, body_for(payment_id)))[0] == 200


async def test_the_route_is_404_when_payouts_are_off(settings, plans, clock, redis_conn):
    bare = create_app(settings.model_copy(update={"konsol_api_token": None}), plans=plans, clock=clock)
    async with TestClient(TestServer(bare)) as off:
        assert await post(off, body_for("x")) == (404, {"ok": False, "error": "disabled"})


async def test_the_webhook_log_keeps_no_card_number_or_signature(client, konsol, submitted):
    label, payment_id = submitted
    body = json.dumps({"event": f"card {CARD}", "data": {"id": payment_id, "status": CARD}}).encode()
    await post(client, body)
    rows = await KonsolWebhookLog.get_motor_collection().find({}).to_list(None)
    text = json.dumps(rows, default=str)
    assert rows and CARD not in text and sign_webhook(body, KONSOL_SECRET) not in text and KONSOL_TOKEN not in text


async def test_metrics_count_payouts_by_status(client, submitted):
    response = await client.get("/metrics")
    assert 'ymds_payouts{status="submitted"} 1.0' in await response.text()
