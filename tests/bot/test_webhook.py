"""Webhook mode: POST /telegram/webhook on the web app, the secret token checked in constant time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pymongo.errors import ServerSelectionTimeoutError

from billing import grants
from db import Invoice, Operation
from db.users import BotUser
from tests.bot.conftest import ADMIN_ID, USER_ID, last_text, message_update
from webhook_server.app import create_app

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture
async def webhook(settings, plans, clock, redis_conn, fake) -> AsyncIterator[TestClient]:
    app = create_app(settings.model_copy(update={"webhook_mode": True}), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def secret(settings) -> dict[str, str]:
    return {SECRET_HEADER: settings.webhook_secret_token}


async def test_startup_registers_the_webhook_with_its_secret_and_the_command_menus(webhook, fake, settings):
    assert fake.webhook == {"url": "http://shop.test/telegram/webhook", "secret_token": settings.webhook_secret_token}
    [params] = fake.sent("setWebhook")
    assert {"message", "callback_query"} <= set(params["allowed_updates"])
    assert [command["command"] for command in fake.commands["ru"]] == [
        "subscribe", "status", "cancel", "language", "donate", "privacy", "deletedata"]
    assert fake.commands[""][0]["description"] == "Choose a plan and pay"


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: "ф" * 8}, {SECRET_HEADER: ""}],
                         ids=["missing", "wrong", "non-ascii", "empty"])
async def test_a_wrong_or_missing_secret_gets_401_and_no_update_is_handled(webhook, fake, headers):
    response = await webhook.post("/telegram/webhook", json=message_update("/start"), headers=headers)

    assert response.status == 401 and await response.text() == "Unauthorized"
    assert fake.sent() == []
    assert await BotUser.find_all().count() == 0


async def test_the_right_secret_gets_the_update_handled_before_the_answer(webhook, fake, settings):
    response = await webhook.post("/telegram/webhook", json=message_update("/start", language_code="uz"),
                                  headers=secret(settings))

    assert response.status == 200
    assert last_text(fake).startswith("Salom, Ivan!")
    assert (await BotUser.find_one(BotUser.user_id == USER_ID)).language == "uz"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"update_id": "x"}', "\xff".encode("latin-1")],
                         ids=["malformed", "not-an-object", "not-an-update", "not-utf8"])
async def test_a_malformed_body_gets_400(webhook, fake, settings, body):
    response = await webhook.post("/telegram/webhook", data=body, headers=secret(settings))
    assert response.status == 400
    assert fake.sent() == []


async def test_an_oversized_body_gets_413(webhook, settings):
    update = message_update("/start")
    update["message"]["text"] = "x" * (1024 * 1024 + 1)
    response = await webhook.post("/telegram/webhook", data=json.dumps(update), headers=secret(settings))
    assert response.status == 413


async def test_a_crashing_handler_answers_500_so_telegram_delivers_again(webhook, fake, settings, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr("bot.routers.subscribe.offers_for", broken)
    response = await webhook.post("/telegram/webhook", json=message_update("/subscribe"), headers=secret(settings))
    assert response.status == 500

    monkeypatch.undo()
    response = await webhook.post("/telegram/webhook", json=message_update("/subscribe"), headers=secret(settings))
    assert response.status == 200 and "reply_markup" in fake.bot_messages(USER_ID)[-1]


async def test_a_database_outage_answers_503_and_the_redelivery_is_answered(webhook, fake, settings, monkeypatch):
    async def down(*args, **kwargs):
        raise ServerSelectionTimeoutError("no primary")

    monkeypatch.setattr("bot.routers.subscribe.get_subscription", down)
    response = await webhook.post("/telegram/webhook", json=message_update("/status"), headers=secret(settings))
    assert response.status == 503, "not acknowledged: Telegram delivers it again"
    assert fake.bot_messages(USER_ID) == []

    monkeypatch.undo()
    again = await webhook.post("/telegram/webhook", json=message_update("/status"), headers=secret(settings))
    assert again.status == 200 and last_text(fake).startswith("You have no subscription")


async def test_the_fake_delivers_a_users_message_through_the_webhook(webhook, fake):
    fake.webhook["url"] = str(webhook.make_url("/telegram/webhook"))
    await fake.user_sends(USER_ID, "/subscribe", language_code="ru")
    assert last_text(fake).startswith("Выберите тариф.")


async def test_24_concurrent_deliveries_of_one_grant_record_it_once(webhook, settings):
    update = message_update(f"/grant {USER_ID} month", user_id=ADMIN_ID)
    responses = await asyncio.gather(*(
        webhook.post("/telegram/webhook", json=update, headers=secret(settings)) for _ in range(24)))

    assert [response.status for response in responses] == [200] * 24
    [operation] = await Operation.find_all().to_list()
    assert operation.provider == "manual" and await Invoice.find_all().count() == 1


async def test_a_crash_between_the_invoice_and_the_ledger_then_redelivery_grants_once(webhook, settings, monkeypatch):
    real_create = grants.create_invoice
    crashes = []

    async def create_then_crash(*args, **kwargs):
        invoice = await real_create(*args, **kwargs)
        if not crashes:
            crashes.append(invoice.label)
            raise RuntimeError("injected crash after the invoice was created")
        return invoice

    monkeypatch.setattr(grants, "create_invoice", create_then_crash)
    update = message_update(f"/grant {USER_ID} month", user_id=ADMIN_ID)
    first = await webhook.post("/telegram/webhook", json=update, headers=secret(settings))
    assert first.status == 500 and await Operation.find_all().count() == 0

    again = await webhook.post("/telegram/webhook", json=update, headers=secret(settings))
    assert again.status == 200
    [operation] = await Operation.find_all().to_list()
    assert operation.label == crashes[0] and await Invoice.find_all().count() == 1
