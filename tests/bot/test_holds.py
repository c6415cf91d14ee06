"""A two-stage payment held for an admin: the admin chat gets it with a Confirm button, and pressing it captures
the payment through CloudPayments' API (its emulator) exactly as the admin API's confirm does."""

from __future__ import annotations

from typing import Any

import pytest

from billing.providers.cloudpayments.protocol import Status
from bot.texts import catalogue
from db import InvoiceStatus, OperationStatus
from tests.bot.conftest import ADMIN_CHAT_ID, ADMIN_ID, USER_ID, bot_settings
from tests.cloudpayments_support import CP_PUBLIC_ID, CP_SECRET, cp, cp_server, invoice_of  # noqa: F401 - fixtures
from tests.helpers import new_invoice, operations
from tests.webhook_server.test_cloudpayments_admin import widget_payment


@pytest.fixture
def settings(yoomoney_emulator, fake_telegram, cp_server):
    emulator_url = cp_server[1]
    return bot_settings(yoomoney_emulator[1], fake_telegram[1], cloudpayments_public_id=CP_PUBLIC_ID,
                        cloudpayments_api_secret=CP_SECRET, cloudpayments_api_url=emulator_url,
                        cloudpayments_widget_url=emulator_url + "/widget.js", cloudpayments_test_mode=True)


def confirm_press(message: dict[str, Any], presser: int, update_id: int) -> dict[str, Any]:
    [[button]] = message["reply_markup"]["inline_keyboard"]
    return {"update_id": update_id, "callback_query": {
        "id": f"cq{update_id}", "chat_instance": "1", "data": button["callback_data"], "message": message,
        "from": {"id": presser, "is_bot": False, "first_name": "Admin", "language_code": "en"}}}


def alerts(fake) -> list[str]:
    return [str(call.get("text")) for call in fake.sent("answerCallbackQuery")]


async def test_the_admin_chat_confirms_a_held_payment_with_its_button(client, cp, worker, dispatcher, bot, fake):
    invoice = await new_invoice(client, user_id=USER_ID)
    transaction = await widget_payment(cp, invoice["label"], USER_ID, scheme="auth")
    await worker.drain()
    [held] = [m for m in fake.bot_messages(ADMIN_CHAT_ID) if invoice["label"] in m["text"]]
    assert "held" in held["text"] and held["reply_markup"]["inline_keyboard"][0][0]["text"] == "Confirm"
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING

    await dispatcher.feed_raw_update(bot, confirm_press(held, USER_ID, 901))  # not an admin
    assert cp.transactions[transaction].status == Status.AUTHORIZED
    await dispatcher.feed_raw_update(bot, confirm_press(held, ADMIN_ID, 902))
    assert cp.api_calls[-1][:2] == ("/payments/confirm", {"TransactionId": str(transaction), "Amount": "299.00"})
    await worker.drain()

    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID
    [operation] = await operations()
    assert operation.status is OperationStatus.APPLIED
    await dispatcher.feed_raw_update(bot, confirm_press(held, ADMIN_ID, 903))
    refused, confirmed, again = alerts(fake)[-3:]
    assert refused == catalogue().texts("en")("admin.refused")
    assert confirmed.startswith("Confirmed") and again.startswith("Nothing")
