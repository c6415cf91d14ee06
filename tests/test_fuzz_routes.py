"""Fuzzing the routes (hypothesis, a bounded number of examples): never a 5xx, never a state change without a
valid signature or token."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis import strategies as st

from billing.plans import load_plans
from billing.providers.yoomoney import sign
from db import Invoice, InvoiceStatus, Operation, OperationStatus
from tests.conftest import AUTH, ROOT, YOOMONEY_SECRET, make_settings
from webhook_server.emulators.payme import basic_auth
from tests.helpers import notification
from tests.payme_support import PAYME_KEY, PAYME_MERCHANT
from tests.webhook_server.test_notify_click import CLICK
from webhook_server.app import create_app

# 60 examples a test in the suite; `python -m bench.fuzz` runs many more through YMDS_FUZZ_EXAMPLES.
EXAMPLES = hypothesis_settings(max_examples=int(os.environ.get("YMDS_FUZZ_EXAMPLES", "60")), deadline=None,
                               suppress_health_check=[HealthCheck.function_scoped_fixture])
PLANS = load_plans(ROOT / "plans.toml")
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
headers = st.dictionaries(st.sampled_from(["Content-Type", "Authorization", "X-Forwarded-For", "Content-HMAC"]),
                          st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
                          max_size=3)


def run(scenario: Callable[[TestClient, str], Awaitable[None]]) -> None:
    """A fresh app (and in-memory database) per example, with one pending invoice; every provider enabled."""

    async def main() -> None:
        settings = make_settings(payme_merchant_id=PAYME_MERCHANT, payme_key=PAYME_KEY, **CLICK)
        async with TestClient(TestServer(create_app(settings, plans=PLANS))) as client:
            created = await client.post("/api/invoices", json={"user_id": 5, "plan": "month"}, headers=AUTH)
            await scenario(client, (await created.json())["label"])

    asyncio.run(main())


async def unchanged(label: str) -> bool:
    invoice = await Invoice.find_one(Invoice.label == label)
    return invoice is not None and invoice.status is InvoiceStatus.PENDING and await Operation.count() == 0


async def nothing_paid(label: str) -> bool:
    """The invoice still pending and unclaimed; an unsigned notification may be kept, but only as unverified
    (waiting for the wallet API) or rejected (for review), never as a payment."""
    invoice = await Invoice.find_one(Invoice.label == label)
    kept = {operation.status for operation in await Operation.find_all().to_list()}
    return invoice is not None and invoice.status is InvoiceStatus.PENDING and invoice.claimed_by is None \
        and kept <= {OperationStatus.UNVERIFIED, OperationStatus.REJECTED}


@EXAMPLES
@given(route=st.sampled_from(["/notify/payme", "/notify/click/prepare", "/notify/click/complete"]),
       body=st.binary(max_size=300), extra=headers)
def test_arbitrary_payme_and_click_requests_never_5xx_nor_change_state(route: str, body: bytes,
                                                                        extra: dict[str, str], redis_conn):
    async def scenario(client: TestClient, label: str) -> None:
        response = await client.post(route, data=body, headers=extra)
        assert response.status < 500
        assert await unchanged(label)

    run(scenario)


@EXAMPLES
@given(method=st.sampled_from(["CheckPerformTransaction", "CreateTransaction", "PerformTransaction",
                               "CancelTransaction", "CheckTransaction", "GetStatement", "ChangePassword"]),
       params=st.dictionaries(text, st.none() | st.booleans() | st.integers() | text, max_size=4),
       authorised=st.booleans())
def test_payme_json_rpc_without_the_key_never_changes_state(method: str, params: dict[str, Any], authorised: bool,
                                                            redis_conn):
    async def scenario(client: TestClient, label: str) -> None:
        headers = {"Authorization": basic_auth(PAYME_KEY if authorised else "wrong-key")}
        response = await client.post("/notify/payme", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                            "params": {**params, "account": {"order_id": label}}},
                                     headers=headers)
        assert response.status == 200
        if not authorised:
            assert (await response.json())["error"]["code"] == -32504
            assert await unchanged(label)

    run(scenario)


@EXAMPLES
@given(body=st.binary(max_size=300), extra=headers)
def test_arbitrary_notification_bodies_never_5xx_nor_change_state(body: bytes, extra: dict[str, str], redis_conn):
    async def scenario(client: TestClient, label: str) -> None:
        response = await client.post("/notify/yoomoney", data=body, headers=extra)
        assert response.status < 500
        assert await nothing_paid(label)

    run(scenario)


@EXAMPLES
@given(field=st.sampled_from(["notification_type", "operation_id", "amount", "currency", "datetime", "sender",
                              "codepro", "label", "sha1_hash", "withdraw_amount", "unaccepted", "bill_id"]),
       value=text, drop=st.booleans())
def test_mutated_notifications_change_state_only_when_still_signed(field: str, value: str, drop: bool, redis_conn):
    async def scenario(client: TestClient, label: str) -> None:
        fields: dict[str, Any] = notification(label)
        if drop:
            fields.pop(field, None)
        else:
            fields[field] = value
        response = await client.post("/notify/yoomoney", data=urlencode(fields).encode(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status < 500
        received = dict(parse_qsl(urlencode(fields), keep_blank_values=True))
        still_signed = all(name in received for name in ("notification_type", "operation_id", "amount", "currency",
                                                         "datetime", "sender", "codepro", "label", "sha1_hash")) \
            and sign(received, YOOMONEY_SECRET) == received["sha1_hash"]
        if not still_signed:
            assert await nothing_paid(label)

    run(scenario)


@EXAMPLES
@given(exp=text, sig=text, path=text)
def test_payment_page_never_5xx_and_never_changes_state(exp: str, sig: str, path: str, redis_conn):
    async def scenario(client: TestClient, label: str) -> None:
        for target in (f"/pay/{label}", f"/pay/{path or 'x'}"):
            response = await client.get(target, params={"exp": exp, "sig": sig})
            assert response.status < 500
        assert await unchanged(label)

    run(scenario)


@EXAMPLES
@given(body=st.binary(max_size=200), json_body=st.recursive(
    st.none() | st.booleans() | st.integers() | text, lambda inner: st.lists(inner) | st.dictionaries(text, inner),
    max_leaves=8), token=st.booleans(), user=text)
def test_admin_api_never_5xx_and_needs_the_token(body: bytes, json_body: Any, token: bool, user: str, redis_conn):
    async def scenario(client: TestClient, label: str) -> None:
        auth = AUTH if token else {}
        for response in (
            await client.post("/api/invoices", data=body, headers={**auth, "Content-Type": "application/json"}),
            await client.post("/api/invoices", json=json_body, headers=auth),
            await client.get(f"/api/users/{user or '0'}/subscription", headers=auth),
            await client.get(f"/api/invoices/{user or 'x'}", headers=auth),
        ):
            assert response.status < 500
            assert token or response.status in (401, 404, 405)
        if not token:
            assert await Invoice.count() == 1

    run(scenario)
