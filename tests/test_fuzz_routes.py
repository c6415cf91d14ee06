"""Fuzzing the routes (hypothesis, a bounded number of examples): never a 5xx, never a state change without a
valid signature or token."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from billing.bounded_json import MAX_DEPTH, MAX_DIGITS, MAX_EXPONENT
from billing.plans import load_plans
from billing.providers.konsol import sign_webhook
from billing.providers.yoomoney import sign
from db import Invoice, InvoiceStatus, Operation, OperationStatus
from db.payme import PaymeTransaction
from tests.conftest import AUTH, ROOT, YOOMONEY_SECRET, make_settings
from tests.helpers import notification
from tests.payme_support import PAYME_KEY, PAYME_MERCHANT
from tests.raw_http import raw_request
from tests.webhook_server.test_notify_click import CLICK
from webhook_server.app import create_app
from webhook_server.emulators.payme import basic_auth, new_payme_id

# 60 examples a test in the suite; `python -m bench.fuzz` runs many more through YMDS_FUZZ_EXAMPLES.
EXAMPLES = hypothesis_settings(max_examples=int(os.environ.get("YMDS_FUZZ_EXAMPLES", "60")), deadline=None,
                               suppress_health_check=[HealthCheck.function_scoped_fixture])
PLANS = load_plans(ROOT / "plans.toml")
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
headers = st.dictionaries(st.sampled_from(["Content-Type", "Authorization", "X-Forwarded-For", "Content-HMAC"]),
                          st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
                          max_size=3)
KONSOL_SECRET = "fuzz-konsol-secret"
# Number literals past every bound a field allows: exponents and digit runs past the reader's bounds (the
# 1e999999999 that froze the server among them), powers of two from 2^50 (past every tiyin and millisecond
# range), fractions and booleans.
huge_numbers = st.one_of(
    st.integers(min_value=MAX_EXPONENT + 1, max_value=10**9).map(lambda exponent: f"1e{exponent}"),
    st.integers(min_value=MAX_DIGITS + 1, max_value=5000).map(lambda digits: "9" * digits),
    st.integers(min_value=50, max_value=200).map(lambda power: str(2**power)),
    st.sampled_from(["1e999999999", "1e1000000", str(10**30), str(2**62), "1.5", "true", "false", "-1e400"]),
)
# JSON nested past the reader's limit, in arrays or objects.
deep_json = st.tuples(st.integers(min_value=MAX_DEPTH + 1, max_value=5000), st.booleans()).map(
    lambda spec: '{"a":' * spec[0] + "1" + "}" * spec[0] if spec[1] else "[" * spec[0] + "]" * spec[0])
# Header values as raw bytes: invalid UTF-8 and stray bytes, all but the ones that end a header line.
header_bytes = st.binary(min_size=1, max_size=40).filter(lambda value: not set(value) & set(b"\r\n\x00"))


def run(scenario: Callable[[TestClient, str], Awaitable[None]]) -> None:
    """A fresh app (and in-memory database) per example, with one pending invoice; every provider enabled."""

    async def main() -> None:
        settings = make_settings(payme_merchant_id=PAYME_MERCHANT, payme_key=PAYME_KEY, **CLICK,
                                 konsol_api_token="fuzz-konsol-token", konsol_base_url="http://127.0.0.1:9",
                                 konsol_webhook_secret=KONSOL_SECRET)
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


PAYME_READS = {"CheckPerformTransaction": {"amount"}, "CreateTransaction": {"id", "time", "amount"},
               "CancelTransaction": {"id", "reason"}, "GetStatement": {"from", "to"}}


@EXAMPLES
@given(method=st.sampled_from(sorted(PAYME_READS)),
       field=st.sampled_from(["amount", "time", "reason", "from", "to", "id"]), literal=huge_numbers)
def test_payme_numbers_past_the_bounds_get_an_error_and_hold_nothing(method: str, field: str, literal: str,
                                                                     redis_conn):
    """With the key: a huge number in any integer field is answered at once with an error, never a 500, and no
    transaction or hold comes of it."""
    async def scenario(client: TestClient, label: str) -> None:
        params = {"id": new_payme_id(), "time": 1, "amount": 3500000, "reason": 5, "from": 0, "to": 1,
                  "account": {"order_id": label}, field: "__N__"}
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        response = await client.post("/notify/payme", data=body.replace('"__N__"', literal).encode(),
                                     headers={"Authorization": basic_auth(PAYME_KEY)})
        assert response.status == 200
        answer = await response.json()
        if field in PAYME_READS[method]:
            assert answer["error"]["code"] in (-32600, -31001), answer
        assert await unchanged(label) and await PaymeTransaction.count() == 0
        assert (await Invoice.find_one(Invoice.label == label)).claimed_by is None

    run(scenario)


@EXAMPLES
@given(route=st.sampled_from(["/notify/payme", "/notify/click/prepare", "/api/invoices", "/notify/konsol"]),
       document=deep_json)
def test_json_nested_past_the_limit_gets_each_route_s_own_refusal(route: str, document: str, redis_conn):
    async def scenario(client: TestClient, label: str) -> None:
        data = document.encode()
        authorization = basic_auth(PAYME_KEY) if route == "/notify/payme" else AUTH["Authorization"]
        sent = {"Content-Type": "application/json", "Authorization": authorization,
                "X-Konsol-Signature": sign_webhook(data, KONSOL_SECRET)}
        response = await client.post(route, data=data, headers=sent)
        answer = await response.json()
        expected = {"/notify/payme": (200, -32700), "/notify/click/prepare": (200, -8),
                    "/api/invoices": (400, "bad_request"), "/notify/konsol": (400, "bad_request")}[route]
        code = answer.get("error") if route != "/notify/payme" else answer["error"]["code"]
        assert (response.status, code) == expected
        assert await unchanged(label)

    run(scenario)


@EXAMPLES
@given(route=st.sampled_from(["/api/invoices", "/notify/payme", "/notify/konsol", "/notify/click/prepare",
                              "/notify/yoomoney", "/pay/{label}/payme/card", "/pay/{label}/renewal"]),
       name=st.sampled_from(["Authorization", "X-Konsol-Signature", "Content-HMAC", "Content-Type",
                             "X-Forwarded-For", "X-Request-Id", "Accept-Language"]),
       value=header_bytes)
def test_invalid_bytes_in_headers_never_5xx_nor_change_state(route: str, name: str, value: bytes, redis_conn):
    async def scenario(client: TestClient, label: str) -> None:
        answer = await raw_request(client, "POST", route.format(label=label), {name: value}, b'{"user_id": 5}')
        assert answer.status < 500, answer.body[:200]
        assert await nothing_paid(label)

    run(scenario)


@EXAMPLES
@given(currency=st.one_of(st.sampled_from(["860", "840", "978", "RUB", "XTR", "UZS", "", "6430", "0643"]),
                          st.integers(min_value=0, max_value=999).filter(lambda code: code != 643).map(str)))
def test_signed_notifications_in_a_currency_yoomoney_does_not_settle_in_never_pay(currency: str, redis_conn):
    """The hash vouches for `currency`; anything but 643 (roubles) is kept for review, never paid."""
    async def scenario(client: TestClient, label: str) -> None:
        fields = {**notification(label), "currency": currency}
        fields["sha1_hash"] = sign(fields, YOOMONEY_SECRET)
        response = await client.post("/notify/yoomoney", data=fields)
        assert response.status == 200, "authentic but unusable: recorded for review, so YooMoney stops"
        assert await nothing_paid(label)

    run(scenario)
