"""Small helpers the integration tests share: invoices through the API, signed YooMoney notifications."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient

from billing.money import Money
from billing.plan_receipt import PlanReceipt
from billing.plans import Catalogue, load_plans
from billing.providers.yoomoney import build_notification, sign
from db import Invoice, Operation, Subscription
from db.users import BotUser, ReceiptContact
from tests.conftest import AUTH, ROOT, YOOMONEY_SECRET

PRICE_MONTH_RUB = 29900


async def new_invoice(client: TestClient, user_id: int = 42, plan: str = "month") -> dict[str, Any]:
    response = await client.post("/api/invoices", json={"user_id": user_id, "plan": plan}, headers=AUTH)
    assert response.status == 201, await response.text()
    return await response.json()


def notification(label: str, paid_minor: int = PRICE_MONTH_RUB, operation_id: str | None = None,
                 **options: Any) -> dict[str, str]:
    return build_notification(
        YOOMONEY_SECRET, operation_id=operation_id or str(secrets.randbelow(10**17) + 10**17),
        paid=Money(paid_minor, "RUB"), label=label, **options,
    )


def resign(fields: dict[str, str]) -> dict[str, str]:
    return {**fields, "sha1_hash": sign(fields, YOOMONEY_SECRET)}


async def post_notification(client: TestClient, fields: dict[str, str]) -> int:
    response = await client.post("/notify/yoomoney", data=fields)
    await response.read()
    return response.status


async def get_json(client: TestClient, path: str) -> tuple[int, Any]:
    response = await client.get(path, headers=AUTH)
    return response.status, await response.json()


async def operations() -> list[Operation]:
    return await Operation.find_all().to_list()


def path_of(url: str) -> str:
    """The path and query of a full URL, for the test client (which adds its own host)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


class Forms(HTMLParser):
    """Every form of a page by id: method, action and fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, Any]] = {}
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self._current = {"method": values.get("method"), "action": values.get("action"), "fields": {}}
            self.forms[values.get("id") or ""] = self._current
        elif tag == "input" and self._current is not None and values.get("name"):
            self._current["fields"][values["name"]] = values.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


async def paid_with_saved_method(client: TestClient, worker: Any, user_id: int, *, provider: str, token: str,
                                 method: str) -> Subscription:
    """A month paid (through YooMoney, for brevity), then a saved method as fulfilment stores one a provider
    gave with a payment the payer chose to renew automatically (billing/consent.py): what renewals and their
    cancellation start from."""
    invoice = await new_invoice(client, user_id=user_id)
    assert await post_notification(client, notification(invoice["label"])) == 200
    await worker.drain()
    consent = {"at": datetime.now(UTC), "ip": "127.0.0.1", "text_version": "test", "provider": provider,
               "amount": 29900, "currency": "RUB", "period_days": 30}
    await Subscription.get_motor_collection().update_one(
        {"user_id": user_id}, {"$set": {"payment_provider": provider, "payment_token": token,
                                        "payment_method": method, "auto_renew": True,
                                        "renewal_consent": consent}})
    subscription = await Subscription.find_one(Subscription.user_id == user_id)
    assert subscription is not None
    return subscription


def plans_with_month_receipt(receipt: PlanReceipt | None) -> Catalogue:
    """The repository's plans, the month given its own `receipt = {...}` (None: as shipped)."""
    shipped = load_plans(ROOT / "plans.toml")
    return Catalogue({plan.name: replace(plan, receipt=receipt) if receipt and plan.name == "month" else plan
                      for plan in shipped})


async def give_receipt_contact(user_id: int, contact: ReceiptContact) -> None:
    """What /email or the payment page stores for a user (another part of the service), done directly."""
    now = datetime.now(UTC)
    await BotUser.get_motor_collection().update_one(
        {"user_id": user_id}, {"$set": {"receipt_contact": contact.model_dump(), "updated_at": now},
                               "$setOnInsert": {"created_at": now}}, upsert=True)


async def give_invoice_contact(label: str, contact: ReceiptContact | None) -> None:
    """What the payment page fixes on an invoice before paying (another part of the service), done directly."""
    await Invoice.get_motor_collection().update_one(
        {"label": label}, {"$set": {"receipt_contact": contact.model_dump() if contact else None}})
