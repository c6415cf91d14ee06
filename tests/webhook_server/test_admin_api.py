"""The admin REST API and the health routes."""

from __future__ import annotations

from tests.conftest import AUTH
from tests.helpers import get_json, new_invoice


async def test_requests_without_the_right_token_get_401(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="},
                    {"Authorization": "Bearer tést"}):
        response = await client.get("/api/invoices/inv_x", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
    response = await client.post("/api/invoices", json={"user_id": 1, "plan": "month"})
    assert response.status == 401


async def test_create_invoice_fixes_the_plan_amounts(client, settings):
    body = await new_invoice(client, user_id=5, plan="year")
    assert body["status"] == "pending"
    assert body["amounts"] == {"RUB": 299000, "UZS": 35000000}
    assert body["pay_url"].startswith(f"{settings.public_base_url}/pay/{body['label']}?exp=")
    status, stored = await get_json(client, f"/api/invoices/{body['label']}")
    assert status == 200
    assert {k: stored[k] for k in ("label", "status", "provider", "paid_at")} == {
        "label": body["label"], "status": "pending", "provider": None, "paid_at": None,
    }


async def test_invoice_labels_are_unique(client):
    labels = {(await new_invoice(client))["label"] for _ in range(20)}
    assert len(labels) == 20


async def test_bad_invoice_requests_get_400_with_a_json_error(client):
    cases = [
        (b"{not json", "bad_request"),
        (b"[1, 2]", "bad_request"),
        (b'{"user_id": "5", "plan": "month"}', "bad_request"),
        (b'{"user_id": true, "plan": "month"}', "bad_request"),
        (b'{"user_id": -1, "plan": "month"}', "bad_request"),
        (b'{"user_id": 5}', "bad_request"),
        (b'{"user_id": 5, "plan": "lifetime"}', "unknown_plan"),
    ]
    for body, code in cases:
        response = await client.post("/api/invoices", data=body,
                                     headers={**AUTH, "Content-Type": "application/json"})
        assert response.status == 400, body
        assert (await response.json())["error"] == code, body


async def test_unknown_invoice_and_subscription_get_404(client):
    status, body = await get_json(client, "/api/invoices/inv_nothing")
    assert (status, body["error"]) == (404, "invoice_not_found")
    status, body = await get_json(client, "/api/users/123/subscription")
    assert (status, body["error"]) == (404, "subscription_not_found")
    status, body = await get_json(client, "/api/users/abc/subscription")
    assert status == 400


async def test_oversized_api_body_gets_413(client):
    response = await client.post("/api/invoices", data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                                 headers={**AUTH, "Content-Type": "application/json"})
    assert response.status == 413


async def test_health_and_readiness(client):
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json())["status"] == "ok"
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["checks"] == {"mongodb": "ok", "redis": "ok"}
