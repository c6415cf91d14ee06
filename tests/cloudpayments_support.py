"""Fixtures and helpers the CloudPayments tests share: CloudPayments enabled in the app, its emulator as a
local server (API and widget) whose notifications go to the test server.

Import the fixtures by name into a test module (`from tests.cloudpayments_support import settings, cp`): the
module's `settings` then overrides conftest's, so `client` is built with CloudPayments enabled.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from billing.money import Money
from billing.providers.cloudpayments.protocol import Kind
from db import Invoice
from db.models import RenewalConsent
from settings import Settings
from tests.conftest import YOOMONEY_API_TOKEN, make_settings
from tests.helpers import path_of
from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator, new_transaction_id
from webhook_server.emulators.cloudpayments_wire import (
    FORM,
    notification_body,
    notification_headers,
    transaction_fields,
)
from webhook_server.emulators.yoomoney import YooMoneyEmulator

CP_PUBLIC_ID = "pk_test_0000000000000000000000"
CP_SECRET = "test_api_secret"  # the reference's test-vector secret
PRICE_MONTH_RUB = 29900
MONTH = Money(PRICE_MONTH_RUB, "RUB")
# The reference's worked vectors (cloudpayments.md §9.2 and §9.4), signed with CP_SECRET.
VECTOR_BODY = (
    b"TransactionId=1234567&Amount=299.00&Currency=RUB&PaymentAmount=299.00&PaymentCurrency=RUB"
    b"&DateTime=2024-05-01+12%3A30%3A00&CardFirstSix=424242&CardLastFour=4242&CardType=Visa"
    b"&CardExpDate=12%2F27&TestMode=1&Status=Completed&OperationType=Payment&GatewayName=Test"
    b"&InvoiceId=inv-42&AccountId=tg-100500&SubscriptionId=&Name=IVAN+PETROV&Email=user%40example.com"
    b"&IpAddress=203.0.113.7&Description=Pro+plan&AuthCode=A1B2C3&Token=tk_0123456789abcdef"
    b"&Data=%7B%22label%22%3A%22inv-42%22%7D&TotalFee=0.00"
)
VECTOR_JSON = b'{"TransactionId":1234567,"Amount":299.00,"Currency":"RUB","InvoiceId":"inv-42","Status":"Completed"}'


def cloudpayments_settings(emulator_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "cloudpayments_public_id": CP_PUBLIC_ID, "cloudpayments_api_secret": CP_SECRET,
        "cloudpayments_api_url": emulator_url, "cloudpayments_widget_url": emulator_url + "/widget.js",
        "cloudpayments_test_mode": True,
    }
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
async def cp_server() -> AsyncIterator[tuple[CloudPaymentsEmulator, str]]:
    emulator = CloudPaymentsEmulator(public_id=CP_PUBLIC_ID, api_secret=CP_SECRET, notify_base="")
    server = TestServer(emulator.app())
    await server.start_server()
    yield emulator, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str], cp_server: tuple[CloudPaymentsEmulator, str]) -> Settings:
    _, yoomoney_url = yoomoney_emulator
    return cloudpayments_settings(cp_server[1], yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_url)


@pytest.fixture
def cp(client: TestClient, cp_server: tuple[CloudPaymentsEmulator, str]) -> CloudPaymentsEmulator:
    """The emulator, sending its notifications to the test server."""
    emulator, _ = cp_server
    emulator.notify_base = str(client.make_url("/notify/cloudpayments"))
    return emulator


def pay_fields(label: str, user_id: int, *, amount: Money = MONTH, transaction_id: int | None = None,
               **options: Any) -> dict[str, str]:
    return transaction_fields(transaction_id=transaction_id or new_transaction_id(), amount=amount, label=label,
                              account_id=str(user_id), **options)


async def post(client: TestClient, kind: Kind | str, fields: dict[str, str] | None = None, *,
               body: bytes | None = None, content_type: str = FORM, secret: str = CP_SECRET,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """A notification as bytes on the wire (written by the emulator's own code, as CloudPayments writes it),
    signed over exactly those bytes unless `headers` says otherwise."""
    data = body if body is not None else notification_body(fields or {}, content_type)
    sent = notification_headers(data, secret, content_type) if headers is None else headers
    response = await client.post(f"/notify/cloudpayments/{kind}", data=data, headers=sent)
    text = await response.text()
    try:
        answer = await response.json(content_type=None)
    except ValueError:
        answer = text
    return response.status, answer


async def invoice_of(label: str) -> Invoice:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice


async def give_consent(label: str, now: datetime | None, provider: str = "cloudpayments") -> None:
    """The payer chose "pay and renew automatically" with `provider` on the payment page, as the page fixes it on
    the invoice (Invoice.auto_renew_consent); None: "pay once"."""
    consent = None if now is None else RenewalConsent(
        at=now, ip="203.0.113.7", text_version="en-test", provider=provider, amount=PRICE_MONTH_RUB, currency="RUB",
        period_days=30).model_dump()
    await Invoice.get_motor_collection().update_one({"label": label}, {"$set": {"auto_renew_consent": consent}})


def reconfigure(client: TestClient, **changes: Any) -> Any:
    """Rebuild the app's CloudPayments provider from its settings with `changes` (e.g. two_stage=True)."""
    from webhook_server.http_transport import AiohttpTransport
    from webhook_server.keys import HTTP, PROVIDERS, SETTINGS
    from webhook_server.providers import build_providers

    update = {f"cloudpayments_{name}": value for name, value in changes.items()}
    updated = client.app[SETTINGS].model_copy(update=update)
    provider = build_providers(updated, AiohttpTransport(client.app[HTTP])).get("cloudpayments")
    client.app[PROVIDERS].providers["cloudpayments"] = provider
    return provider


def page_form(page: str, form_id: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the form `form_id` on a page."""
    found = re.search(rf'<form method="post" action="([^"]*)" id="{form_id}">(.*?)</form>', page, re.S)
    assert found, f"no form {form_id}"
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', found.group(2)))
    return html.unescape(found.group(1)), {name: html.unescape(value) for name, value in fields.items()}


async def choose_on_page(client: TestClient, invoice: dict[str, Any], form_id: str) -> dict[str, Any]:
    """The payer presses a provider's button in "pay once" (pay-…) or "pay and renew" (renew-…) on the payment
    page; our page hands over to the CloudPayments widget, whose configuration this is."""
    page = await (await client.get(path_of(invoice["pay_url"]))).text()
    action, fields = page_form(page, form_id)
    response = await client.post(urlsplit(action).path, data=fields, allow_redirects=False)
    assert response.status == 200, await response.text()
    return widget_config(await response.text())


def link_fields(pay_url: str) -> dict[str, str]:
    """The signed link's query (exp, lang, sig) as the payment page's form posts it."""
    return {name: values[0] for name, values in parse_qs(urlsplit(pay_url).query).items()}


async def widget_page(client: TestClient, label: str, fields: dict[str, str]) -> ClientResponse:
    """POST /pay/{label}/cloudpayments, as the payment page's CloudPayments button does."""
    return await client.post(f"/pay/{label}/cloudpayments", data=fields, allow_redirects=False)


def widget_config(page: str) -> dict[str, Any]:
    """The widget's configuration our widget page hands its script (scheme, options, returnUrl)."""
    found = re.search(r'<script type="application/json" id="cloudpayments-config">(.*?)</script>', page, re.S)
    assert found, page
    config: dict[str, Any] = json.loads(found.group(1), parse_float=Decimal)
    return config


async def open_widget(client: TestClient, invoice: dict[str, Any]) -> dict[str, Any]:
    """The payer opens the CloudPayments widget for `invoice` through our pages; its configuration."""
    response = await widget_page(client, invoice["label"], link_fields(invoice["pay_url"]))
    assert response.status == 200, await response.text()
    return widget_config(await response.text())
