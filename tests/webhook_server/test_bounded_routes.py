"""Issue 24, part 1, over real HTTP for Click, the admin API, konsol.pro's webhook and the /pay/{label}/... forms:
JSON nested past the reader's limit, numbers past its bounds, invalid UTF-8 in bodies and headers, and forms
aiohttp cannot read each get the route's own 4xx (Click's -8, the admin API's 400 JSON error, konsol.pro's
400/401, the payment page's 400), never a 500, and change nothing. Each group also shows the well-formed
request getting past the reader, so the refusals are the bounds and not a route that refuses everything."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from billing.bounded_json import MAX_DEPTH
from billing.providers.click import Action, build_request
from billing.providers.konsol import sign_webhook, webhook_body
from db import Invoice, InvoiceStatus, Operation
from db.click import ClickAttempt
from db.payouts import ClaimStatus, KonsolWebhookLog
from settings import Settings
from tests.conftest import AUTH, YOOMONEY_API_TOKEN, make_settings
from tests.helpers import new_invoice
from tests.konsol_support import filed_claim, stored
from tests.payme_support import PAYME_KEY, PAYME_MERCHANT
from tests.raw_http import raw_request
from tests.webhook_server.test_notify_click import CLICK, SECRET as CLICK_SECRET

KONSOL_SECRET = "konsol_webhook_test_secret"
JSON = {"Content-Type": "application/json"}
DEPTHS = [MAX_DEPTH + 1, 1001, 100_000]


@pytest.fixture
def settings(yoomoney_emulator: Any) -> Settings:
    """Click, Payme, YooKassa and konsol.pro enabled; their APIs at a closed loopback port, never reached."""
    _, yoomoney_url = yoomoney_emulator
    closed = "http://127.0.0.1:9"
    return make_settings(
        yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_url, **CLICK,
        payme_merchant_id=PAYME_MERCHANT, payme_key=PAYME_KEY, payme_api_url=closed,
        yookassa_shop_id="123456", yookassa_secret_key="test_yookassa_secret", yookassa_api_url=closed,
        konsol_api_token="test-konsol-token", konsol_base_url=closed, konsol_webhook_secret=KONSOL_SECRET,
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def nothing_changed(label: str) -> bool:
    invoice = await Invoice.find_one(Invoice.label == label)
    return (invoice is not None and invoice.status is InvoiceStatus.PENDING and invoice.claimed_by is None
            and await Operation.count() == 0 and await ClickAttempt.count() == 0)


# ---- Click: every refusal is its -8 answer --------------------------------------------------------------


def click_prepare(label: str) -> dict[str, str]:
    return build_request(CLICK_SECRET, action=Action.PREPARE, click_trans_id=4242, service_id=CLICK["click_service_id"],
                         label=label, amount="35000.00", sign_time="2026-11-22 12:00:00", click_paydoc_id=77)


async def click_json(client: TestClient, data: bytes) -> dict[str, Any]:
    response = await client.post("/notify/click/prepare", data=data, headers=JSON)
    assert response.status == 200
    return await response.json()


async def test_a_signed_json_prepare_gets_past_the_reader(client):
    invoice = await new_invoice(client)
    answer = await click_json(client, json.dumps(click_prepare(invoice["label"])).encode())
    assert answer["error"] == 0


@pytest.mark.parametrize("depth", DEPTHS)
async def test_click_json_nested_too_deep_gets_minus_8(client, depth):
    invoice = await new_invoice(client)
    fields = json.dumps(click_prepare(invoice["label"]))
    answer = await click_json(client, (fields[:-1] + f', "pad": {nested(depth)}}}').encode())
    assert answer["error"] == -8
    assert await nothing_changed(invoice["label"])


@pytest.mark.parametrize("literal", ["1e999999999", "9" * 5000], ids=["exp-billion", "digits-5000"])
@pytest.mark.parametrize("field", ["click_trans_id", "amount", "error"])
async def test_click_json_numbers_past_the_bounds_get_minus_8(client, field, literal):
    invoice = await new_invoice(client)
    text = json.dumps({**click_prepare(invoice["label"]), field: "__N__"}).replace('"__N__"', literal)
    answer = await click_json(client, text.encode())
    assert answer["error"] == -8
    assert await nothing_changed(invoice["label"])


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
async def test_click_bodies_that_are_not_utf8_get_minus_8(client, content_type):
    invoice = await new_invoice(client)
    body = urlencode(click_prepare(invoice["label"])).encode() + b"&note=\xff\xfe"
    if content_type == "application/json":
        body = json.dumps(click_prepare(invoice["label"])).encode().replace(b'"Success"', b'"\xff\xfe"')
    response = await client.post("/notify/click/prepare", data=body, headers={"Content-Type": content_type})
    assert (response.status, (await response.json())["error"]) == (200, -8)
    assert await nothing_changed(invoice["label"])


# ---- the admin API: 400 with its JSON error, 401 for a header that is not a token -------------------------


async def api_post(client: TestClient, path: str, data: bytes, method: str = "POST") -> tuple[int, Any]:
    response = await client.request(method, path, data=data, headers={**AUTH, **JSON})
    return response.status, await response.json()


async def test_an_invoice_request_nested_to_the_limit_is_read(client):
    pad = nested(MAX_DEPTH - 1)  # the object itself is the first level
    status, body = await api_post(client, "/api/invoices", f'{{"user_id": 5, "plan": "month", "pad": {pad}}}'.encode())
    assert (status, body["status"]) == (201, "pending")


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(("method", "path"), [("POST", "/api/invoices"), ("PATCH", "/api/users/5/subscription")])
async def test_admin_json_nested_too_deep_is_400(client, method, path, depth):
    status, body = await api_post(client, path, f'{{"user_id": 5, "plan": "month", "pad": {nested(depth)}}}'.encode(),
                                  method)
    assert (status, body["error"]) == (400, "bad_request")
    assert await Invoice.count() == 0


@pytest.mark.parametrize("literal", ["1e999999999", "1e1000000", str(10**30), str(2**62), "9" * 5000, "5.0", "true"])
async def test_a_user_id_out_of_bounds_is_400(client, literal):
    status, body = await api_post(client, "/api/invoices", f'{{"user_id": {literal}, "plan": "month"}}'.encode())
    assert (status, body["error"], body["message"]) == (400, "bad_request", "user_id must be a positive integer")
    assert await Invoice.count() == 0


@pytest.mark.parametrize("data", [b'{"user_id": 5, "plan": "\xff"}', b'{"user_id": 5, "plan": "\\ud800"}'],
                         ids=["not-utf8", "lone-surrogate"])
async def test_an_admin_body_that_is_not_utf8_is_400(client, data):
    status, body = await api_post(client, "/api/invoices", data)
    assert (status, body["error"]) == (400, "bad_request")
    assert await Invoice.count() == 0


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"Bearer \xed\xa0\x80", "Bearer ключ".encode(), b"\xff"],
                         ids=["not-utf8", "utf8-surrogate", "not-ascii", "no-scheme"])
async def test_an_authorization_header_that_is_no_token_is_401(client, value):
    answer = await raw_request(client, "POST", "/api/invoices", {"Authorization": value, **JSON},
                               b'{"user_id": 5, "plan": "month"}')
    assert (answer.status, json.loads(answer.body)["error"]) == (401, "unauthorized")
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert await Invoice.count() == 0


async def test_a_payout_reject_nested_too_deep_or_not_utf8_is_400_and_the_claim_stays(client, clock):
    claim = await filed_claim(client, clock.now)
    for data in (f'{{"reason": "x", "pad": {nested(MAX_DEPTH + 1)}}}'.encode(), b'{"reason": "\xff"}'):
        status, body = await api_post(client, f"/api/payouts/{claim.label}/reject", data)
        assert (status, body["error"]) == (400, "bad_request")
    assert (await stored(claim.label)).status is ClaimStatus.NEW
    status, body = await api_post(client, f"/api/payouts/{claim.label}/reject", b'{"reason": "not a partner"}')
    assert (status, body["status"]) == (200, "rejected")


@pytest.mark.parametrize("name", ["page", "per_page", "user_id"])
async def test_a_payout_filter_of_thousands_of_digits_is_400(client, name):
    response = await client.get("/api/payouts", params={name: "9" * 5000}, headers=AUTH)
    assert (response.status, (await response.json())["error"]) == (400, "bad_request")



# ---- konsol.pro's webhook -------------------------------------------------------------------------------


async def konsol(client: TestClient, body: bytes, signature: bytes | None = None) -> tuple[int, Any]:
    headers: dict[str, bytes | str] = {**JSON, "X-Konsol-Signature": signature or sign_webhook(body, KONSOL_SECRET)}
    answer = await raw_request(client, "POST", "/notify/konsol", headers, body)
    return answer.status, json.loads(answer.body)


@pytest.mark.parametrize("body", [
    b'{"data": {"id": "pay_1", "pad": ' + nested(MAX_DEPTH + 1).encode() + b"}}",
    b"[" * 30_000 + b"]" * 30_000,
    b'{"data": {"id": "pay_\xff"}}',
    b'{"data": {"id": "\\udc00"}}',
    b'{"data": {"id": 1e999999999}}',
], ids=["nested-33", "nested-30000", "not-utf8", "lone-surrogate", "huge-id"])
async def test_a_signed_konsol_webhook_we_cannot_read_is_400(client, body):
    assert await konsol(client, body) == (400, {"ok": False, "error": "bad_request"})
    [entry] = await KonsolWebhookLog.find_all().to_list()
    assert (entry.outcome, entry.http_status) == ("bad_request", 400)


@pytest.mark.parametrize("signature", [b"\xff\xfe", b"\xed\xa0\x80" * 20, "подпись".encode()],
                         ids=["not-utf8", "utf8-surrogate", "not-ascii"])
async def test_a_konsol_signature_that_is_not_hex_is_401(client, signature):
    body = webhook_body("pay_1", 150000, "executed", "2025-03-01T12:00:00Z")
    assert await konsol(client, body, signature) == (401, {"ok": False, "error": "unauthorized"})


async def test_a_non_ascii_konsol_url_token_is_401(client):
    response = await client.post("/notify/konsol?token=%D1%84%FF", data=b"{}", headers=JSON)
    assert (response.status, await response.json()) == (401, {"ok": False, "error": "unauthorized"})


# ---- the /pay/{label}/... forms -------------------------------------------------------------------------


def link_of(invoice: dict[str, Any]) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(invoice["pay_url"]).query))


def broken_forms(link: dict[str, str]) -> dict[str, tuple[str, bytes]]:
    """Forms that carry the invoice's good link but cannot be read, by content type and body. (A percent-escape
    of invalid UTF-8, `%FF`, is read by aiohttp as U+FFFD: readable, so not among them.)"""
    good = urlencode({**link, "token": "tok"}).encode()
    part = ('--b\r\nContent-Disposition: form-data; name="{}"\r\n{}\r\n{}\r\n')
    parts = "".join(part.format(name, "", value) for name, value in link.items())
    return {
        "multipart-no-boundary": ("multipart/form-data", good),
        "multipart-bad-utf8": ("multipart/form-data; boundary=b",
                               parts.encode() + b'--b\r\nContent-Disposition: form-data; name="token"\r\n\r\n'
                                                b'\xff\r\n--b--\r\n'),
        "multipart-bad-transfer-encoding": (
            "multipart/form-data; boundary=b",
            parts.encode() + b'--b\r\nContent-Disposition: form-data; name="token"\r\n'
                             b"Content-Transfer-Encoding: bogus\r\n\r\ntok\r\n--b--\r\n"),
        "multipart-bad-boundary": ("multipart/form-data; boundary=b", b"--c\r\n\r\n"),
        "urlencoded-raw-ff": ("application/x-www-form-urlencoded", good + b"&note=\xff"),
        "unknown-charset": ("application/x-www-form-urlencoded; charset=no-such-charset", good),
    }


FORM_CASES = list(broken_forms({"exp": "1", "sig": "x"}))


@pytest.mark.parametrize("route", ["payme/card", "yookassa"])
@pytest.mark.parametrize("case", FORM_CASES)
async def test_a_pay_form_that_cannot_be_read_is_400(client, route, case):
    invoice = await new_invoice(client)
    content_type, body = broken_forms(link_of(invoice))[case]
    response = await client.post(f"/pay/{invoice['label']}/{route}", data=body,
                                 headers={"Content-Type": content_type})
    assert response.status == 400, await response.text()
    assert "text/html" in response.headers["Content-Type"]  # the payment page's error page, for a person
    assert await nothing_changed(invoice["label"])


@pytest.mark.parametrize("route", ["payme/card", "yookassa"])
async def test_a_readable_pay_form_reaches_the_link_check(client, route):
    """The same forms, well-formed and with a tampered signature: read, then refused by the link check."""
    invoice = await new_invoice(client)
    response = await client.post(f"/pay/{invoice['label']}/{route}",
                                 data={**link_of(invoice), "sig": "0" * 64, "token": "tok"})
    assert response.status == 403
    assert await nothing_changed(invoice["label"])
